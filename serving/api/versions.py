"""What a worker keeps in process of each published version: the item table and fallback
lists, the core's arrays of the version (its similar lists filled in as they load), and the
local copy of popular/trending lists answered from while Redis is down.

A version is loaded once (one load at a time per version), then read from memory; the last
two versions seen are kept (a switch and a rollback cost nothing), older ones are dropped
with everything of theirs. The similar lists of a version are preloaded in the background
when it has at most ``RECSYS_SIMILAR_CACHE_ITEMS`` items; otherwise (and until the preload
is done) a request loads the lists its seeds need (``serving.core.run.NeedLists``).
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from serving import fallback as local
from serving.api.breaker import REDIS_DOWN
from serving.api.metrics import Metrics
from serving.core.arrays import Trend, VersionArrays, fill_similar, request_trend, version_arrays
from serving.rerank import Fallback, RerankConfig
from serving.settings import Settings
from serving.store import AsyncStore, NoActiveVersion
from serving.types import Candidates, ItemTable

log = logging.getLogger("recsys.serving")

KEPT_VERSIONS = 2
KEPT_TRENDS = 1024  # trending lists of request-named categories kept per version


@dataclass(slots=True)
class Bundle:
    """Everything of one version the service keeps in process."""

    version: str
    table: ItemTable
    fallback: Fallback
    arrays: VersionArrays  # replaced when the similar-list matrix widens
    trends: OrderedDict[str, Trend | None] = field(default_factory=OrderedDict)

    def trend(self, category: str) -> Trend | None:
        """The trending list backing a thin answer under a category the request names."""
        if category in self.trends:
            return self.trends[category]
        found = self.trends[category] = request_trend(self.fallback, category)
        if len(self.trends) > KEPT_TRENDS:
            self.trends.popitem(last=False)
        return found

    def fill(self, rows: Sequence[int], lists: Sequence[Candidates]) -> None:
        """Store loaded similar lists of item ``rows``."""
        self.arrays = fill_similar(self.arrays, rows, lists)


def local_bundle(copy: local.LocalCopy, config: RerankConfig) -> Bundle:
    """The local copy of a version's fallback lists as a bundle (no similar lists)."""
    arrays = version_arrays(copy.table, copy.fallback, config)
    bundle = Bundle(copy.version, copy.table, copy.fallback, arrays)
    bundle.fill(range(copy.table.n_items), [Candidates.empty()] * copy.table.n_items)
    return bundle


class VersionCache:
    """The per-process cache of versions (one per :class:`RecommendationService`)."""

    def __init__(
        self, store: AsyncStore, settings: Settings, metrics: Metrics, config: RerankConfig
    ) -> None:
        self.store = store
        self.settings = settings
        self.metrics = metrics
        self.config = config
        copy = local.load(settings.fallback_path)
        self.local: Bundle | None = local_bundle(copy, config) if copy else None
        self.active: str = ""  # last active version seen (a hint, checked every request)
        self.bundles: dict[str, Bundle] = {}
        self.preloaded: set[str] = set()  # versions whose similar lists are all in memory
        self._loading: dict[str, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()

    async def bundle(self, version: str) -> Bundle | None:
        """Everything of ``version`` in process (loaded once, then from memory).

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
                arrays = await asyncio.to_thread(version_arrays, table, fb, self.config)
                bundle = self.bundles[version] = Bundle(version, table, fb, arrays)
                self._save_local_copy(table, fb)
                freeze_heap()
                if 0 < table.n_items <= self.settings.similar_cache_items:
                    task = asyncio.create_task(self._preload_similar(bundle))
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
                self.preloaded.discard(old)

    def _save_local_copy(self, table: ItemTable, fb: Fallback) -> None:
        copy = local.local_copy(table, fb)
        self.local = local_bundle(copy, self.config)
        try:
            local.save(copy, self.settings.fallback_path)
        except OSError as exc:  # a read-only disk must not fail requests
            log.warning("could not save the local fallback copy: %s", exc)

    async def _preload_similar(self, bundle: Bundle, chunk: int = 2000) -> None:
        """Load every similar list of a version in the background (static per version), so
        session seeds never cost a second round trip. Stops when the version is dropped or
        Redis fails (requests then load what they miss)."""
        version, n_items = bundle.version, bundle.table.n_items
        try:
            for start in range(0, n_items, chunk):
                if self.bundles.get(version) is not bundle:
                    return
                rows = range(start, min(start + chunk, n_items))
                todo = [r for r in rows if bundle.arrays.sim_len[r] < 0]
                if todo:
                    bundle.fill(todo, await self.store.similar(version, todo))
                await asyncio.sleep(0)  # let requests run between chunks
        except REDIS_DOWN:
            return
        self.preloaded.add(version)
        freeze_heap()

    async def load_similar(self, bundle: Bundle, rows: np.ndarray) -> None:
        """Load the similar lists of item ``rows`` of a version (one round trip)."""
        todo = [int(r) for r in rows.tolist() if bundle.arrays.sim_len[r] < 0]
        if todo:
            bundle.fill(todo, await self.store.similar(bundle.version, todo))


def freeze_heap() -> None:
    """Move everything alive now (a version's item table, similar lists: long-lived, hundreds
    of thousands of objects) out of the cyclic garbage collector's reach. Without this every
    full collection walks them: tens of milliseconds, many times a minute under load (a
    large share of the CPU per request and the worst p99 latencies). Reference counting
    still frees them when a version is dropped."""
    gc.collect()
    gc.freeze()
