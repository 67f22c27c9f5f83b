"""A circuit breaker for Redis: fail fast while it is down, retry now and then, recover."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import redis

REDIS_DOWN: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    OSError,
    asyncio.TimeoutError,
)
"""Errors that mean "Redis is unavailable" (answer degraded, count towards the breaker)."""


class CircuitBreaker:
    """Opens after ``failures`` consecutive errors; while open, lets one call through every
    ``retry_s`` seconds (half-open); a success closes it again."""

    def __init__(
        self, failures: int = 3, retry_s: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.threshold = failures
        self.retry_s = retry_s
        self.clock = clock
        self.failures = 0
        self.opened_at: float | None = None
        self.next_try = 0.0

    @property
    def is_open(self) -> bool:
        return self.opened_at is not None

    def allow(self) -> bool:
        """May a call try Redis now?"""
        if self.opened_at is None:
            return True
        now = self.clock()
        if now >= self.next_try:
            self.next_try = now + self.retry_s  # one trial per period
            return True
        return False

    def success(self) -> None:
        self.failures = 0
        self.opened_at = None

    def failure(self) -> None:
        self.failures += 1
        if self.failures >= self.threshold:
            now = self.clock()
            if self.opened_at is None:
                self.opened_at = now
            self.next_try = now + self.retry_s
