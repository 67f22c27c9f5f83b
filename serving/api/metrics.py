"""Prometheus metrics of one app (own registry, so several apps can live in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class Metrics:
    """Latency per endpoint, degraded answers, Redis errors, breaker state, active version."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.latency = Histogram(
            "recsys_request_seconds",
            "Request latency by endpoint (route template) and status class.",
            ["endpoint", "method", "status"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.degraded = Counter(
            "recsys_degraded_answers",
            "Answers served from the local fallback copy, by endpoint and cause.",
            ["endpoint", "cause"],
            registry=self.registry,
        )
        self.redis_errors = Counter(
            "recsys_redis_errors", "Failed Redis calls.", registry=self.registry
        )
        self.breaker_open = Gauge(
            "recsys_breaker_open",
            "1 while the Redis circuit breaker is open.",
            registry=self.registry,
        )
        self.active_version = Gauge(
            "recsys_active_version_info",
            "1 for the model version currently answering.",
            ["version"],
            registry=self.registry,
        )
        self.compiled = Gauge(
            "recsys_compiled",
            "1 when this worker runs the numba-compiled kernels, 0 while it runs them "
            "interpreted (a cold start, until a compiled worker replaces it).",
            registry=self.registry,
        )
        self._version: str | None = None
        self._observers: dict[tuple[str, str, str], Histogram] = {}

    def observe(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        key = (endpoint, method, f"{status // 100}xx")
        child = self._observers.get(key)
        if child is None:
            child = self._observers[key] = self.latency.labels(*key)
        child.observe(seconds)

    def set_version(self, version: str | None) -> None:
        if version == self._version:
            return
        if self._version is not None:
            self.active_version.remove(self._version)
        if version is not None:
            self.active_version.labels(version).set(1)
        self._version = version

    def render(self) -> bytes:
        return generate_latest(self.registry)
