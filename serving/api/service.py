"""What the routes call: read the store, re-rank, degrade instead of failing.

One :class:`RecommendationService` per process. Per request it resolves the active version
once (in the same round trip as the customer's candidates and online state), reads every
other thing of that same version (item table, fallback lists and similar lists, all cached
in process per version: ``serving.api.versions``), so no answer mixes two versions. When
Redis is down (short timeouts, a circuit breaker) or no version is active, it answers from
the local copy of popular/trending lists and says so (``degraded``).
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Sequence
from typing import Any, NamedTuple

import redis
import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from serving import jit
from serving.api.breaker import REDIS_DOWN, CircuitBreaker
from serving.api.fastredis import FastRedis
from serving.api.metrics import Metrics
from serving.api.versions import Bundle, VersionCache
from serving.connection import redis_url
from serving.core import warm
from serving.core.arrays import StateArrays, config_arrays, request_arrays, state_arrays
from serving.core.run import NeedLists, Ranked, batch_of, rank_batch, rank_one
from serving.rerank import RerankConfig, RerankRequest
from serving.settings import Settings
from serving.store import AsyncStore, NoActiveVersion
from serving.types import OnlineEvent

log = logging.getLogger("recsys.serving")

NO_VERSION = "no_active_version"
REDIS_UNAVAILABLE = "redis_unavailable"


class UnknownItem(LookupError):
    """The item is not in the active version's catalog."""


class StoreUnavailable(RuntimeError):
    """A write could not reach Redis (the caller should retry)."""


class Answer(NamedTuple):
    """The JSON array of the ranked items with the version that answered and whether the
    answer is degraded (a named tuple: one is built on every request)."""

    version: str | None
    degraded: bool
    json: bytes
    cause: str | None = None  # why degraded: redis_unavailable | no_active_version


NO_ITEMS = b"[]"
EMPTY_STATE = state_arrays(None, [], [], [])


class RecommendationService:
    """The serving logic behind every route (one per process)."""

    def __init__(self, settings: Settings, store: AsyncStore | None = None) -> None:
        # numba-compiled (or interpreted while a cold start compiles: serving.api.supervisor)
        self.compiled = jit.compiled()
        if self.compiled:
            warm.warm_up()  # compiled (or loaded from the cache) before the first request
        _tune_gc()
        self.settings = settings
        self.config: RerankConfig = settings.rerank_config()
        self.config_arrays = config_arrays(self.config)
        self.metrics = Metrics()
        self.metrics.compiled.set(1 if self.compiled else 0)
        self.breaker = CircuitBreaker(settings.breaker_failures, settings.breaker_retry_s)
        self.store = store or AsyncStore(_client(settings), prefix=settings.redis_prefix)
        self.versions = VersionCache(self.store, settings, self.metrics, self.config)

    async def close(self) -> None:
        self.versions.close()
        await self.store.client.aclose()

    # ---- storefront -----------------------------------------------------------------------
    async def recommend(self, customer_id: str, request: RerankRequest) -> Answer:
        """Recommendations for one customer (unknown customers get a cold-start answer):
        route -> read plan (one round trip) -> codec -> core -> JSON."""
        if not self.breaker.allow():
            return self.degraded(request, REDIS_UNAVAILABLE)
        versions = self.versions
        try:
            try:
                raw = await self.store.customer_raw_active(
                    customer_id, versions.active, mail=request.context == "email"
                )
            except NoActiveVersion:
                self.breaker.success()
                return self.degraded(request, NO_VERSION)
            bundle = versions.bundles.get(raw.version) if raw.version == versions.active else None
            if bundle is None:
                bundle = await versions.bundle(raw.version)
                if bundle is None:
                    return self.degraded(request, NO_VERSION)
            state = state_arrays(raw.candidates, raw.recent, raw.cart, raw.bought, raw.mailed)
            ranked = await self._rank(bundle, request, state)
        except REDIS_DOWN as exc:
            return self._failed(exc, request)
        self.breaker.success()
        return Answer(raw.version, False, ranked.json)

    async def similar_items(
        self, item_id: str, request: RerankRequest, customer_id: str | None = None
    ) -> Answer:
        """Items similar to ``item_id``, filtered for ``customer_id`` when given.

        Raises :class:`UnknownItem` when the active version does not know the item.
        """
        request = request._replace(context="product", item_id=item_id)
        if not self.breaker.allow():
            return self.degraded(request, REDIS_UNAVAILABLE)
        try:
            state = EMPTY_STATE
            try:
                if customer_id is None:
                    version = await self.store.active_version()
                    if version is None:
                        raise NoActiveVersion("no active version")
                else:
                    raw = await self.store.customer_raw_active(customer_id, self.versions.active)
                    version = raw.version
                    state = state_arrays(None, raw.recent, raw.cart, raw.bought, raw.mailed)
            except NoActiveVersion:
                self.breaker.success()
                return self.degraded(request, NO_VERSION)
            bundle = await self.versions.bundle(version)
            if bundle is None:
                return self.degraded(request, NO_VERSION)
            if item_id not in bundle.table.index:
                self.breaker.success()
                raise UnknownItem(item_id)
            ranked = await self._rank(bundle, request, state, only_item_seed=True)
        except REDIS_DOWN as exc:
            return self._failed(exc, request)
        self.breaker.success()
        return Answer(version, False, ranked.json)

    # ---- email ------------------------------------------------------------------------------
    async def email_batch(
        self, customer_ids: Sequence[str], request: RerankRequest, record: bool = False
    ) -> tuple[Answer, list[bytes]]:
        """Email lists for many customers: one round trip for all their candidates and state;
        with ``record`` the sends are stored for frequency capping. Returns the shared
        version/degraded answer and each customer's JSON list, in order."""
        request = request._replace(context="email")
        if self.breaker.allow():
            try:
                version = await self.store.active_version()
                bundle = await self.versions.bundle(version) if version else None
                if version is None or bundle is None:
                    self.breaker.success()
                    return self._degraded_batch(customer_ids, request, NO_VERSION)
                raws = await self.store.customers_raw(version, list(customer_ids))
                batch = batch_of(
                    [state_arrays(r.candidates, r.recent, r.cart, r.bought, r.mailed) for r in raws]
                )
                req = self._request(bundle, request)
                while True:
                    got = rank_batch(bundle.arrays, self.config_arrays, req, batch)
                    if not isinstance(got, NeedLists):
                        break
                    await self.versions.load_similar(bundle, got.rows)
                if record:
                    ids = bundle.table.item_ids
                    sends = {
                        cid: ids[ranked.items].tolist()
                        for cid, ranked in zip(customer_ids, got, strict=True)
                    }
                    await self.store.record_email_sends(sends, request.now)
                self.breaker.success()
                return Answer(version, False, NO_ITEMS), [ranked.json for ranked in got]
            except REDIS_DOWN as exc:
                self._count_failure(exc)
        return self._degraded_batch(customer_ids, request, REDIS_UNAVAILABLE)

    # ---- events -----------------------------------------------------------------------------
    async def record_events(self, events: Sequence[OnlineEvent]) -> int:
        """Store online events (state + stream). Raises :class:`StoreUnavailable` when Redis
        is down, so the caller retries and no event is lost silently."""
        if not self.breaker.allow():
            raise StoreUnavailable("Redis is unavailable; retry later")
        try:
            n = await self.store.record_events(events)
        except REDIS_DOWN as exc:
            self._count_failure(exc)
            raise StoreUnavailable("Redis is unavailable; retry later") from exc
        self.breaker.success()
        return n

    # ---- health -----------------------------------------------------------------------------
    async def readiness(self) -> tuple[bool, str | None, str | None]:
        """(ready, active version, cause when not ready): Redis reachable and a version active."""
        try:
            version = await self.store.active_version()
        except REDIS_DOWN as exc:
            self._count_failure(exc)
            return False, None, REDIS_UNAVAILABLE
        self.breaker.success()
        if version is None:
            return False, None, NO_VERSION
        try:
            if await self.versions.bundle(version) is None:
                return False, version, NO_VERSION
        except REDIS_DOWN as exc:
            self._count_failure(exc)
            return False, version, REDIS_UNAVAILABLE
        return True, version, None

    # ---- degraded answers -------------------------------------------------------------------
    def degraded(self, request: RerankRequest, cause: str) -> Answer:
        """Popular/trending from the local copy (no personal data: Redis is not reachable)."""
        local = self.versions.local
        if local is None:
            return Answer(None, True, NO_ITEMS, cause)
        req = self._request(local, request)
        ranked = rank_one(local.arrays, self.config_arrays, req, EMPTY_STATE)
        assert isinstance(ranked, Ranked)  # the local copy has every (empty) similar list
        return Answer(local.version, True, ranked.json, cause)

    def _degraded_batch(
        self, customer_ids: Sequence[str], request: RerankRequest, cause: str
    ) -> tuple[Answer, list[bytes]]:
        answer = self.degraded(request, cause)
        return answer._replace(json=NO_ITEMS), [answer.json] * len(customer_ids)

    def _failed(self, exc: BaseException, request: RerankRequest) -> Answer:
        self._count_failure(exc)
        return self.degraded(request, REDIS_UNAVAILABLE)

    def _count_failure(self, exc: BaseException) -> None:
        self.metrics.redis_errors.inc()
        was_open = self.breaker.is_open
        self.breaker.failure()
        self.metrics.breaker_open.set(1 if self.breaker.is_open else 0)
        if self.breaker.is_open and not was_open:
            log.warning("Redis unavailable (%s): answering degraded", exc)

    # ---- the core -----------------------------------------------------------------------------
    def _request(self, bundle: Bundle, request: RerankRequest, only_item_seed: bool = False) -> Any:
        return request_arrays(bundle.arrays, bundle.table, request, bundle.trend, only_item_seed)

    async def _rank(
        self,
        bundle: Bundle,
        request: RerankRequest,
        state: StateArrays,
        only_item_seed: bool = False,
    ) -> Ranked:
        """The core's answer; similar lists it needs that are not loaded yet are loaded
        first (one round trip)."""
        req = self._request(bundle, request, only_item_seed)
        while True:
            got = rank_one(bundle.arrays, self.config_arrays, req, state)
            if isinstance(got, Ranked):
                return got
            await self.versions.load_similar(bundle, got.rows)


GC_YOUNG_THRESHOLD = 20_000


def _tune_gc() -> None:
    """Run the cyclic collector's young pass every 20,000 container allocations instead of
    every 700. A request's objects are acyclic and freed by reference counting, so the
    frequent passes find nothing and cost about 4% of a recommendation's CPU (measured
    with bench/serve.py's load); the rare cycles (exceptions, tasks) live a little longer."""
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


def _client(settings: Settings) -> Any:
    """An asyncio Redis client with short timeouts and no retries (the breaker retries);
    hot-path reads go through :class:`serving.api.fastredis.FastRedis` unless disabled."""
    url = redis_url(settings.redis_url)
    pool = redis.asyncio.BlockingConnectionPool.from_url(
        url,
        max_connections=settings.redis_max_connections,
        timeout=settings.redis_timeout_s,  # waiting for a free connection
        socket_timeout=settings.redis_timeout_s,
        socket_connect_timeout=settings.redis_timeout_s,
    )
    client = redis.asyncio.Redis(
        connection_pool=pool, decode_responses=False, retry=Retry(NoBackoff(), 0)
    )
    if settings.fast_redis:
        return FastRedis(url, client, settings.redis_timeout_s)
    return client
