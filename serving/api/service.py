"""What the routes call: read the store, re-rank, degrade instead of failing.

One :class:`RecommendationService` per process. Per request it resolves the active version
once (in the same round trip as the customer's candidates and online state), reads every
other thing of that same version (item table, fallback lists and similar lists, all cached
in process per version: ``serving.api.versions``), so no answer mixes two versions. When
Redis is down (short timeouts, a circuit breaker) or no version is active, it answers from
the local copy of popular/trending lists and says so (``degraded``).
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Sequence
from typing import Any, NamedTuple

import redis
import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from serving import fastpath, jit, kernels
from serving.api.breaker import REDIS_DOWN, CircuitBreaker
from serving.api.fastredis import FastRedis
from serving.api.metrics import Metrics
from serving.api.versions import Bundle, VersionCache, freeze_heap
from serving.connection import redis_url
from serving.rerank import (
    SIMILAR_TO_ITEM,
    RerankConfig,
    RerankRequest,
    Seed,
    rerank,
    session_seeds,
)
from serving.settings import Settings
from serving.store import AsyncStore, NoActiveVersion, RawCustomer
from serving.types import Candidates, CustomerView, ItemTable, OnlineEvent, OnlineState, RankedItem

log = logging.getLogger("recsys.serving")

NO_VERSION = "no_active_version"
REDIS_UNAVAILABLE = "redis_unavailable"


class UnknownItem(LookupError):
    """The item is not in the active version's catalog."""


class StoreUnavailable(RuntimeError):
    """A write could not reach Redis (the caller should retry)."""


class Answer(NamedTuple):
    """Ranked items with the version that answered and whether the answer is degraded (a
    named tuple: one is built on every request)."""

    version: str | None
    degraded: bool
    items: list[RankedItem]
    cause: str | None = None  # why degraded: redis_unavailable | no_active_version
    json: bytes | None = None  # the items as a JSON array, when the compiled path answered


class RecommendationService:
    """The serving logic behind every route (one per process)."""

    def __init__(self, settings: Settings, store: AsyncStore | None = None) -> None:
        # numba-compiled (or interpreted while a cold start compiles: serving.api.supervisor)
        self.compiled = jit.compiled()
        if self.compiled:
            kernels.warm_up()  # compiled (or loaded from the cache) before the first request
            fastpath.warm_up()
        _tune_gc()
        self.settings = settings
        self.config: RerankConfig = settings.rerank_config()
        self.compiled_config = fastpath.compile_config(self.config)
        self.metrics = Metrics()
        self.metrics.compiled.set(1 if self.compiled else 0)
        self.breaker = CircuitBreaker(settings.breaker_failures, settings.breaker_retry_s)
        self.store = store or AsyncStore(_client(settings), prefix=settings.redis_prefix)
        self.versions = VersionCache(self.store, settings, self.metrics, self._compile)

    @property
    def compiled_versions(self) -> frozenset[str]:
        """Versions the storefront's compiled path answers for (``serving.fastpath``)."""
        return frozenset(self.versions.compiled)

    async def close(self) -> None:
        self.versions.close()
        await self.store.client.aclose()

    # ---- storefront -----------------------------------------------------------------------
    async def recommend(self, customer_id: str, request: RerankRequest) -> Answer:
        """Recommendations for one customer (unknown customers get a cold-start answer)."""
        if not self.breaker.allow():
            return self.degraded(request, REDIS_UNAVAILABLE)
        versions = self.versions
        try:
            raw: RawCustomer | None = None
            try:
                if self.store.raw_reads:
                    raw = await self.store.customer_raw_active(
                        customer_id, versions.active, mail=request.context == "email"
                    )
                    version = raw.version
                else:
                    view = await self.store.customer_view_active(customer_id, versions.active)
                    version = view.version
            except NoActiveVersion:
                self.breaker.success()
                return self.degraded(request, NO_VERSION)
            bundle = versions.bundles.get(version) if version == versions.active else None
            if bundle is None:
                bundle = await versions.bundle(version)
                if bundle is None:
                    return self.degraded(request, NO_VERSION)
            if raw is not None:
                fast = self._fast_answer(raw, bundle, request)
                if fast is not None:
                    self.breaker.success()
                    return Answer(version, False, [], json=fast)
                view = raw.view()
            items = await self._rank(view, bundle, request)
        except REDIS_DOWN as exc:
            return self._failed(exc, request)
        self.breaker.success()
        return Answer(version, False, items)

    def _fast_answer(
        self, raw: RawCustomer, bundle: Bundle, request: RerankRequest
    ) -> bytes | None:
        """The compiled path's JSON items (``serving.fastpath``), None: the general path."""
        compiled = self.versions.compiled.get(raw.version)
        if compiled is None or not fastpath.eligible(request, self.config):
            return None
        return fastpath.answer(
            compiled,
            self.compiled_config,
            request,
            raw.candidates,
            raw.recent,
            raw.cart,
            raw.bought,
            bundle.table.index,
        )

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
            if customer_id is None:
                version = await self.store.active_version()
                if version is None:
                    self.breaker.success()
                    return self.degraded(request, NO_VERSION)
                state = OnlineState()
            else:
                try:
                    view = await self.store.customer_view_active(customer_id, self.versions.active)
                except NoActiveVersion:
                    self.breaker.success()
                    return self.degraded(request, NO_VERSION)
                version, state = view.version, view.state
            bundle = await self.versions.bundle(version)
            if bundle is None:
                return self.degraded(request, NO_VERSION)
            if item_id not in bundle.table.index:
                self.breaker.success()
                raise UnknownItem(item_id)
            seeds = (Seed(item_id, 1.0, SIMILAR_TO_ITEM),)
            similar = await self.versions.similar_lists(version, bundle.table, seeds)
        except REDIS_DOWN as exc:
            return self._failed(exc, request)
        self.breaker.success()
        items = rerank(
            bundle.table,
            Candidates.empty(),
            state,
            seeds,
            similar,
            bundle.fallback,
            request,
            self.config,
        )
        return Answer(version, False, items)

    # ---- email ------------------------------------------------------------------------------
    async def email_batch(
        self, customer_ids: Sequence[str], request: RerankRequest, record: bool = False
    ) -> tuple[Answer, dict[str, list[RankedItem]]]:
        """Email lists for many customers: one round trip for all their candidates and state;
        with ``record`` the sends are stored for frequency capping. Returns the shared
        version/degraded answer (its ``items`` empty) and the lists by customer."""
        request = request._replace(context="email")
        if self.breaker.allow():
            try:
                version = await self.store.active_version()
                bundle = await self.versions.bundle(version) if version else None
                if version is None or bundle is None:
                    self.breaker.success()
                    return self._degraded_batch(customer_ids, request, NO_VERSION)
                views = await self.store.customer_views(version, list(customer_ids))
                seeds = {
                    v: session_seeds(view.state, request, self.config)
                    for v, view in zip(customer_ids, views, strict=True)
                }
                all_seeds = tuple({s.item_id: s for ss in seeds.values() for s in ss}.values())
                similar = await self.versions.similar_lists(version, bundle.table, all_seeds)
                lists = {
                    cid: rerank(
                        bundle.table,
                        view.candidates,
                        view.state,
                        seeds[cid],
                        similar,
                        bundle.fallback,
                        request,
                        self.config,
                    )
                    for cid, view in zip(customer_ids, views, strict=True)
                }
                if record:
                    sends = {cid: [r.item_id for r in items] for cid, items in lists.items()}
                    await self.store.record_email_sends(sends, request.now)
                self.breaker.success()
                return Answer(version, False, []), lists
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
        copy = self.versions.local
        if copy is None:
            return Answer(None, True, [], cause)
        items = rerank(
            copy.table,
            Candidates.empty(),
            OnlineState(),
            (),
            {},
            copy.fallback,
            request,
            self.config,
        )
        return Answer(copy.version, True, items, cause)

    def _degraded_batch(
        self, customer_ids: Sequence[str], request: RerankRequest, cause: str
    ) -> tuple[Answer, dict[str, list[RankedItem]]]:
        answer = self.degraded(request, cause)
        return (
            Answer(answer.version, True, [], cause),
            {cid: answer.items for cid in customer_ids},
        )

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

    # ---- internals --------------------------------------------------------------------------
    async def _rank(
        self, view: CustomerView, bundle: Bundle, request: RerankRequest
    ) -> list[RankedItem]:
        seeds = session_seeds(view.state, request, self.config)
        similar = (
            await self.versions.similar_lists(view.version, bundle.table, seeds) if seeds else {}
        )
        return rerank(
            bundle.table,
            view.candidates,
            view.state,
            seeds,
            similar,
            bundle.fallback,
            request,
            self.config,
        )

    async def _compile(self, version: str, table: ItemTable) -> None:
        """Every similar list of ``version`` is in memory: compile the version for the
        storefront's path (``serving.fastpath``). Interpreted (a cold start, ``serving.jit``)
        the fast path would be slower than the general one: nothing to compile."""
        if not self.compiled:
            freeze_heap()
            return
        versions = self.versions
        cached = versions.similar.get(version, {})
        try:
            compiled = await asyncio.to_thread(fastpath.compile_version, table, cached, self.config)
        except Exception:  # the general path still answers: say so, do not fail
            log.exception("could not compile version %s for the storefront's fast path", version)
            return
        if compiled is not None and version in versions.bundles:
            versions.compiled[version] = compiled
            # the cached lists become views on the compiled matrix: one copy in memory
            views = fastpath.similar_views(compiled, table.item_ids.tolist())
            if versions.similar.get(version) is cached:
                versions.similar[version] = views
        freeze_heap()


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
