"""What the routes call: read the store, re-rank, degrade instead of failing.

One :class:`RecommendationService` per process. Per request it resolves the active version
once (in the same round trip as the customer's candidates and online state), reads every
other thing of that same version (item table, fallback lists and similar lists, all cached
in process per version), so no answer mixes two versions. When Redis is down (short
timeouts, a circuit breaker) or no version is active, it answers from the local copy of
popular/trending lists and says so (``degraded``).
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import redis
import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from serving import fallback as local
from serving import fastpath, jit, kernels
from serving.api.breaker import CircuitBreaker
from serving.api.fastredis import FastRedis
from serving.api.metrics import Metrics
from serving.connection import redis_url
from serving.rerank import (
    SIMILAR_TO_ITEM,
    Fallback,
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

REDIS_DOWN: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    OSError,
    asyncio.TimeoutError,
)
"""Errors that mean "Redis is unavailable" (answer degraded, count towards the breaker)."""

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


@dataclass(frozen=True, slots=True)
class _Bundle:
    """Everything of one version the service keeps in process."""

    table: ItemTable
    fallback: Fallback


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
        self.local: local.LocalCopy | None = local.load(settings.fallback_path)
        self._active: str = ""  # last active version seen (a hint, checked every request)
        self._bundles: dict[str, _Bundle] = {}
        self._loading: dict[str, asyncio.Lock] = {}
        self._similar: dict[str, dict[str, Candidates]] = {}  # version -> item id -> list
        self._similar_count = 0
        self._compiled: dict[str, fastpath.CompiledVersion] = {}  # version -> arrays
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def compiled_versions(self) -> frozenset[str]:
        """Versions the storefront's compiled path answers for (``serving.fastpath``)."""
        return frozenset(self._compiled)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await self.store.client.aclose()

    # ---- storefront -----------------------------------------------------------------------
    async def recommend(self, customer_id: str, request: RerankRequest) -> Answer:
        """Recommendations for one customer (unknown customers get a cold-start answer)."""
        if not self.breaker.allow():
            return self.degraded(request, REDIS_UNAVAILABLE)
        try:
            raw: RawCustomer | None = None
            try:
                if self.store.raw_reads:
                    raw = await self.store.customer_raw_active(
                        customer_id, self._active, mail=request.context == "email"
                    )
                    version = raw.version
                else:
                    view = await self.store.customer_view_active(customer_id, self._active)
                    version = view.version
            except NoActiveVersion:
                self.breaker.success()
                return self.degraded(request, NO_VERSION)
            bundle = self._bundles.get(version) if version == self._active else None
            if bundle is None:
                bundle = await self._bundle(version)
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
        self, raw: RawCustomer, bundle: _Bundle, request: RerankRequest
    ) -> bytes | None:
        """The compiled path's JSON items (``serving.fastpath``), None: the general path."""
        compiled = self._compiled.get(raw.version)
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
                    view = await self.store.customer_view_active(customer_id, self._active)
                except NoActiveVersion:
                    self.breaker.success()
                    return self.degraded(request, NO_VERSION)
                version, state = view.version, view.state
            bundle = await self._bundle(version)
            if bundle is None:
                return self.degraded(request, NO_VERSION)
            if item_id not in bundle.table.index:
                self.breaker.success()
                raise UnknownItem(item_id)
            seeds = (Seed(item_id, 1.0, SIMILAR_TO_ITEM),)
            similar = await self._similar_lists(version, bundle.table, seeds)
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
                bundle = await self._bundle(version) if version else None
                if version is None or bundle is None:
                    self.breaker.success()
                    return self._degraded_batch(customer_ids, request, NO_VERSION)
                views = await self.store.customer_views(version, list(customer_ids))
                seeds = {
                    v: session_seeds(view.state, request, self.config)
                    for v, view in zip(customer_ids, views, strict=True)
                }
                all_seeds = tuple({s.item_id: s for ss in seeds.values() for s in ss}.values())
                similar = await self._similar_lists(version, bundle.table, all_seeds)
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
            if await self._bundle(version) is None:
                return False, version, NO_VERSION
        except REDIS_DOWN as exc:
            self._count_failure(exc)
            return False, version, REDIS_UNAVAILABLE
        return True, version, None

    # ---- degraded answers -------------------------------------------------------------------
    def degraded(self, request: RerankRequest, cause: str) -> Answer:
        """Popular/trending from the local copy (no personal data: Redis is not reachable)."""
        copy = self.local
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
        self, view: CustomerView, bundle: _Bundle, request: RerankRequest
    ) -> list[RankedItem]:
        seeds = session_seeds(view.state, request, self.config)
        similar = await self._similar_lists(view.version, bundle.table, seeds) if seeds else {}
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

    async def _bundle(self, version: str) -> _Bundle | None:
        """Item table + fallback lists of ``version`` (loaded once, then from memory).

        None when the version has no item table (deleted or expired)."""
        bundle = self._bundles.get(version)
        if bundle is not None:
            if version != self._active:
                self._switched(version)
            return bundle
        lock = self._loading.setdefault(version, asyncio.Lock())
        async with lock:
            bundle = self._bundles.get(version)
            if bundle is None:
                try:
                    table = await self.store.item_table(version)
                except NoActiveVersion:
                    return None
                lists = await self.store.all_lists(version)
                fb = local.fallback_from_lists(table, lists, self.store.list_name)
                bundle = self._bundles[version] = _Bundle(table, fb)
                self._save_local_copy(table, fb)
                _freeze_heap()
                if 0 < table.n_items <= self.settings.similar_cache_items:
                    task = asyncio.create_task(self._preload_similar(version, table))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
        self._switched(version)
        return bundle

    def _switched(self, version: str) -> None:
        """Remember the newest active version; keep the bundles of the last two versions."""
        if version == self._active:
            return
        self._active = version
        self.metrics.set_version(version)
        for old in list(self._bundles)[:-2]:
            if old != version:
                del self._bundles[old]
                self._loading.pop(old, None)
        self._similar = {v: lists for v, lists in self._similar.items() if v in self._bundles}
        self._compiled = {v: c for v, c in self._compiled.items() if v in self._bundles}
        self._similar_count = sum(len(lists) for lists in self._similar.values())

    def _save_local_copy(self, table: ItemTable, fb: Fallback) -> None:
        copy = local.local_copy(table, fb)
        self.local = copy
        try:
            local.save(copy, self.settings.fallback_path)
        except OSError as exc:  # a read-only disk must not fail requests
            log.warning("could not save the local fallback copy: %s", exc)

    async def _preload_similar(self, version: str, table: ItemTable, chunk: int = 2000) -> None:
        """Fill the similar-items cache of a version in the background (static per version),
        so session seeds never cost a second round trip. Stops when the version is dropped
        or Redis fails (requests then fetch what they miss)."""
        try:
            for start in range(0, table.n_items, chunk):
                if version not in self._bundles:
                    return
                items = range(start, min(start + chunk, table.n_items))
                lists = await self.store.similar(version, list(items))
                self._cache_similar(version, table.item_ids[start : items.stop].tolist(), lists)
                await asyncio.sleep(0)  # let requests run between chunks
        except REDIS_DOWN:
            return
        if not self.compiled:  # interpreted, the fast path would be slower than the general one
            _freeze_heap()
            return
        # every similar list is in memory: compile the version for the storefront's path
        cached = self._similar.get(version, {})
        try:
            compiled = await asyncio.to_thread(fastpath.compile_version, table, cached, self.config)
        except Exception:  # the general path still answers: say so, do not fail
            log.exception("could not compile version %s for the storefront's fast path", version)
            return
        if compiled is not None and version in self._bundles:
            self._compiled[version] = compiled
            # the cached lists become views on the compiled matrix: one copy in memory
            views = fastpath.similar_views(compiled, table.item_ids.tolist())
            if self._similar.get(version) is cached:
                self._similar[version] = views
        _freeze_heap()

    def _cache_similar(self, version: str, item_ids: list[str], lists: list[Candidates]) -> None:
        cap = self.settings.similar_cache_items
        if not cap:
            return
        if self._similar_count + len(item_ids) > cap:
            # over the cap: drop the other versions' lists first (the version loading now
            # must keep all of its own to be compiled), then everything
            mine = self._similar.get(version, {})
            self._similar, self._similar_count = {version: mine}, len(mine)
            if self._similar_count + len(item_ids) > cap:
                self._similar, self._similar_count = {}, 0
        cache = self._similar.setdefault(version, {})
        before = len(cache)
        cache.update(zip(item_ids, lists, strict=True))
        self._similar_count += len(cache) - before

    async def _similar_lists(
        self, version: str, table: ItemTable, seeds: Iterable[Seed]
    ) -> Mapping[str, Candidates]:
        """Similar lists of the seeds: from the in-process cache, misses in one round trip."""
        out: dict[str, Candidates] = {}
        missing: list[tuple[str, int]] = []
        cache = self._similar.get(version, {})
        for seed in seeds:
            found = cache.get(seed.item_id)
            if found is not None:
                out[seed.item_id] = found
                continue
            idx = table.index.get(seed.item_id)
            if idx is not None:
                missing.append((seed.item_id, idx))
        if missing:
            lists = await self.store.similar(version, [idx for _, idx in missing])
            ids = [item_id for item_id, _ in missing]
            out.update(zip(ids, lists, strict=True))
            self._cache_similar(version, ids, lists)
        return out


GC_YOUNG_THRESHOLD = 20_000


def _tune_gc() -> None:
    """Run the cyclic collector's young pass every 20,000 container allocations instead of
    every 700. A request's objects are acyclic and freed by reference counting, so the
    frequent passes find nothing and cost about 4% of a recommendation's CPU (measured
    with bench/serve.py's load); the rare cycles (exceptions, tasks) live a little longer."""
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


def _freeze_heap() -> None:
    """Move everything alive now (a version's item table, similar lists: long-lived, hundreds
    of thousands of objects) out of the cyclic garbage collector's reach. Without this every
    full collection walks them: tens of milliseconds, many times a minute under load (a
    large share of the CPU per request and the worst p99 latencies). Reference counting
    still frees them when a version is dropped."""
    gc.collect()
    gc.freeze()


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
