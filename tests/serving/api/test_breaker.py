"""The circuit breaker's states with a controllable clock."""

from __future__ import annotations

from serving.api.breaker import CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_consecutive_failures_and_retries_once_per_period() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failures=2, retry_s=1.0, clock=clock)
    breaker.failure()
    assert not breaker.is_open and breaker.allow()
    breaker.failure()
    assert breaker.is_open and not breaker.allow()
    clock.now = 1.0
    assert breaker.allow()  # the trial call
    assert not breaker.allow()  # only one per period
    breaker.failure()
    clock.now = 1.5
    assert not breaker.allow()
    clock.now = 2.0
    assert breaker.allow()
    breaker.success()
    assert not breaker.is_open and breaker.allow() and breaker.allow()


def test_a_success_resets_the_count() -> None:
    breaker = CircuitBreaker(failures=2, retry_s=1.0, clock=Clock())
    breaker.failure()
    breaker.success()
    breaker.failure()
    assert not breaker.is_open
