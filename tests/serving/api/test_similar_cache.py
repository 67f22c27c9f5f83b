"""The service's in-process cache of similar lists, under its cap."""

from __future__ import annotations

import asyncio
from pathlib import Path

from serving.api.service import RecommendationService
from serving.settings import Settings
from serving.types import Candidates


def test_a_version_loading_over_the_cap_drops_the_other_versions_first(
    redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    """The version being loaded keeps all of its lists (it can then be compiled for the
    storefront's fast path); the previous version's lists go first."""
    settings = Settings(
        redis_url=redis_url,
        redis_prefix=redis_prefix,
        fallback_path=tmp_path / "fallback.json",
        similar_cache_items=40,
    )
    service = RecommendationService(settings)
    empty = Candidates.empty()
    service.versions.cache_similar("v1", [f"a{k}" for k in range(30)], [empty] * 30)
    for start in range(0, 30, 10):  # v2 arrives in chunks, as the preload fetches it
        service.versions.cache_similar(
            "v2", [f"b{k}" for k in range(start, start + 10)], [empty] * 10
        )
    assert "v1" not in service.versions.similar
    assert len(service.versions.similar["v2"]) == 30
    # a single version over the cap still starts afresh
    service.versions.cache_similar("v2", [f"c{k}" for k in range(20)], [empty] * 20)
    assert len(service.versions.similar["v2"]) == 20
    asyncio.run(service.close())
