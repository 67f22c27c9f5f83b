"""serving.store.registry: NoActiveVersion is the one "no such version" error of the store."""

from __future__ import annotations

import asyncio

import pytest

from serving.connection import connect_async
from serving.store import AsyncStore, NoActiveVersion, Store


def test_no_active_version_is_a_lookup_error_but_not_a_key_error() -> None:
    assert issubclass(NoActiveVersion, LookupError)
    assert not issubclass(NoActiveVersion, KeyError)


def test_missing_versions_raise_no_active_version(
    store: Store, redis_url: str, redis_prefix: str
) -> None:
    with pytest.raises(NoActiveVersion, match="no item table"):
        store.item_table("nope")
    with pytest.raises(NoActiveVersion, match="never begun"):
        store.finish_version("nope", {})

    async def run() -> None:
        client = connect_async(redis_url)
        astore = AsyncStore(client, prefix=redis_prefix)
        try:
            with pytest.raises(NoActiveVersion, match="no active version"):
                await astore.customer_raw_active("c1", "")
            with pytest.raises(NoActiveVersion, match="no active version"):
                await astore.customer_view_active("c1", "v1")
            with pytest.raises(NoActiveVersion, match="no item table"):
                await astore.item_table("nope")
        finally:
            await client.aclose()

    asyncio.run(run())
