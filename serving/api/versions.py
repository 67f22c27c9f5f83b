"""What a worker keeps in process of each published version: the item table and fallback
lists (a bundle), the similar lists, the compiled arrays of the storefront's path, and the
local copy of popular/trending lists answered from while Redis is down.

A version is loaded once (one load at a time per version), then read from memory; the last
two versions seen are kept (a switch and a rollback cost nothing), older ones are dropped
with everything of theirs. The similar lists of a version are preloaded in the background,
under a cap on the lists kept (``RECSYS_SIMILAR_CACHE_ITEMS``).
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass

from serving import fallback as local
from serving import fastpath
from serving.api.breaker import REDIS_DOWN
from serving.api.metrics import Metrics
from serving.rerank import Fallback, Seed
from serving.settings import Settings
from serving.store import AsyncStore, NoActiveVersion
from serving.types import Candidates, ItemTable

log = logging.getLogger("recsys.serving")

KEPT_VERSIONS = 2


@dataclass(frozen=True, slots=True)
class Bundle:
    """Everything of one version the service keeps in process."""

    table: ItemTable
    fallback: Fallback


Preloaded = Callable[[str, ItemTable], Awaitable[None]]
"""Called once every similar list of a version is in memory (the service compiles it)."""


class VersionCache:
    """The per-process cache of versions (one per :class:`RecommendationService`)."""

    def __init__(
        self, store: AsyncStore, settings: Settings, metrics: Metrics, preloaded: Preloaded
    ) -> None:
        self.store = store
        self.settings = settings
        self.metrics = metrics
        self.preloaded = preloaded
        self.local: local.LocalCopy | None = local.load(settings.fallback_path)
        self.active: str = ""  # last active version seen (a hint, checked every request)
        self.bundles: dict[str, Bundle] = {}
        self.similar: dict[str, dict[str, Candidates]] = {}  # version -> item id -> list
        self.compiled: dict[str, fastpath.CompiledVersion] = {}  # version -> arrays
        self._similar_count = 0
        self._loading: dict[str, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()

    async def bundle(self, version: str) -> Bundle | None:
        """Item table + fallback lists of ``version`` (loaded once, then from memory).

        None when the version has no item table (deleted or expired)."""
        bundle = self.bundles.get(version)
        if bundle is not None:
            if version != self.active:
                self._switched(version)
            return bundle
        lock = self._loading.setdefault(version, asyncio.Lock())
        async with lock:
            bundle = self.bundles.get(version)
            if bundle is None:
                try:
                    table = await self.store.item_table(version)
                except NoActiveVersion:
                    return None
                lists = await self.store.all_lists(version)
                fb = local.fallback_from_lists(table, lists, self.store.list_name)
                bundle = self.bundles[version] = Bundle(table, fb)
                self._save_local_copy(table, fb)
                freeze_heap()
                if 0 < table.n_items <= self.settings.similar_cache_items:
                    task = asyncio.create_task(self._preload_similar(version, table))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
        self._switched(version)
        return bundle

    def _switched(self, version: str) -> None:
        """Remember the newest active version; keep the bundles of the last two versions."""
        if version == self.active:
            return
        self.active = version
        self.metrics.set_version(version)
        for old in list(self.bundles)[:-KEPT_VERSIONS]:
            if old != version:
                del self.bundles[old]
                self._loading.pop(old, None)
        self.similar = {v: lists for v, lists in self.similar.items() if v in self.bundles}
        self.compiled = {v: c for v, c in self.compiled.items() if v in self.bundles}
        self._similar_count = sum(len(lists) for lists in self.similar.values())

    def _save_local_copy(self, table: ItemTable, fb: Fallback) -> None:
        copy = local.local_copy(table, fb)
        self.local = copy
        try:
            local.save(copy, self.settings.fallback_path)
        except OSError as exc:  # a read-only disk must not fail requests
            log.warning("could not save the local fallback copy: %s", exc)

    async def _preload_similar(self, version: str, table: ItemTable, chunk: int = 2000) -> None:
        """Fill the similar-items cache of a version in the background (static per version),
        so session seeds never cost a second round trip, then call ``preloaded``. Stops when
        the version is dropped or Redis fails (requests then fetch what they miss)."""
        try:
            for start in range(0, table.n_items, chunk):
                if version not in self.bundles:
                    return
                items = range(start, min(start + chunk, table.n_items))
                lists = await self.store.similar(version, list(items))
                self.cache_similar(version, table.item_ids[start : items.stop].tolist(), lists)
                await asyncio.sleep(0)  # let requests run between chunks
        except REDIS_DOWN:
            return
        await self.preloaded(version, table)

    def cache_similar(self, version: str, item_ids: list[str], lists: list[Candidates]) -> None:
        cap = self.settings.similar_cache_items
        if not cap:
            return
        if self._similar_count + len(item_ids) > cap:
            # over the cap: drop the other versions' lists first (the version loading now
            # must keep all of its own to be compiled), then everything
            mine = self.similar.get(version, {})
            self.similar, self._similar_count = {version: mine}, len(mine)
            if self._similar_count + len(item_ids) > cap:
                self.similar, self._similar_count = {}, 0
        cache = self.similar.setdefault(version, {})
        before = len(cache)
        cache.update(zip(item_ids, lists, strict=True))
        self._similar_count += len(cache) - before

    async def similar_lists(
        self, version: str, table: ItemTable, seeds: Iterable[Seed]
    ) -> Mapping[str, Candidates]:
        """Similar lists of the seeds: from the in-process cache, misses in one round trip."""
        out: dict[str, Candidates] = {}
        missing: list[tuple[str, int]] = []
        cache = self.similar.get(version, {})
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
            self.cache_similar(version, ids, lists)
        return out


def freeze_heap() -> None:
    """Move everything alive now (a version's item table, similar lists: long-lived, hundreds
    of thousands of objects) out of the cyclic garbage collector's reach. Without this every
    full collection walks them: tens of milliseconds, many times a minute under load (a
    large share of the CPU per request and the worst p99 latencies). Reference counting
    still frees them when a version is dropped."""
    gc.collect()
    gc.freeze()
