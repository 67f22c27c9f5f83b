"""serving.store against a real Redis: encoding, versions, reads, online state, the stream."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np
import pytest
import redis

from serving.api.fastredis import FastRedis
from serving.connection import connect, connect_async
from serving.store import (
    AsyncStore,
    PublishInProgress,
    Store,
    StoreConfig,
    check_id,
    decode_ranked,
    decode_ranked_compiled,
    encode_ranked,
    encode_ranked_rows,
    item_width,
)
from serving.types import ItemTable, OnlineEvent

N_ITEMS = 30


@pytest.fixture
def store(redis_url: str, redis_prefix: str) -> Store:
    return Store(connect(redis_url), prefix=redis_prefix)


def item_table(version: str, n: int = N_ITEMS) -> ItemTable:
    return ItemTable(
        version=version,
        item_ids=np.array([f"i{j}" for j in range(n)], dtype=object),
        category=(np.arange(n) % 3).astype(np.int32),
        categories=("Home > Mugs", "Food", "Toys"),
        price=np.linspace(1, 30, n).astype(np.float32),
        in_stock=np.arange(n) % 5 != 0,
        created_at=np.full(n, 1.7e9),
        repeatable=(np.arange(n) % 3) == 1,
    )


def publish(store: Store, version: str, customers: list[str], seed: int = 0) -> np.ndarray:
    """Write a complete small version by hand; returns the candidate item matrix."""
    rng = np.random.default_rng(seed)
    items = np.stack([rng.permutation(N_ITEMS)[:10] for _ in customers]).astype(np.int32)
    scores = np.sort(rng.random(items.shape).astype(np.float32), axis=1)[:, ::-1]
    width = item_width(N_ITEMS)
    store.begin_version(version, {"model": "hand"})
    store.write_candidates(version, customers, items, scores, width=width)
    sim_items = (np.arange(N_ITEMS)[:, None] + np.arange(1, 6)[None, :]) % N_ITEMS
    store.write_similar(
        version, np.arange(N_ITEMS), sim_items, np.ones(sim_items.shape, np.float32), width=width
    )
    store.write_lists(
        version,
        {"popular": decode_ranked(encode_ranked(np.arange(5), np.arange(5.0)[::-1], width))},
        width=width,
    )
    store.write_item_table(item_table(version))
    store.finish_version(
        version, {"customers": len(customers), "similar": N_ITEMS}, sample_customers=customers[:3]
    )
    return items


def test_encoding_round_trip_trims_padding_and_handles_wide_items() -> None:
    items = np.array([[5, 3, -1, -1], [70000, 1, 2, 9]], dtype=np.int32)
    scores = np.array([[0.9, 0.5, -np.inf, -np.inf], [3.0, 2.0, 1.0, 0.5]], np.float32)
    rows = encode_ranked_rows(items, scores, width=4)
    assert len(rows[0]) == 1 + 2 * 6 and len(rows[1]) == 1 + 4 * 6
    back = decode_ranked(rows[1])
    assert back.items.tolist() == [70000, 1, 2, 9]
    np.testing.assert_allclose(back.scores, scores[1], rtol=1e-3)
    assert decode_ranked(rows[0]).items.tolist() == [5, 3]
    narrow = encode_ranked_rows(items[:1], scores[:1], width=2)[0]
    assert len(narrow) == 1 + 2 * 4 and decode_ranked(narrow).items.tolist() == [5, 3]
    assert len(decode_ranked(None)) == 0


@pytest.mark.parametrize("width", [2, 4])
def test_compiled_decoding_equals_decode_ranked(width: int) -> None:
    rng = np.random.default_rng(width)
    high = 65_000 if width == 2 else 2**31 - 1
    items = rng.integers(0, high, (50, 30))
    scores = rng.standard_normal((50, 30)) * 10.0 ** rng.integers(-9, 6, (50, 30))
    scores[0, :4] = [0.0, -0.0, 1e9, -1e9]  # zero, clipped to float16's range
    for row in encode_ranked_rows(items, scores, width):
        expected = decode_ranked(row)
        got_items, got_scores = decode_ranked_compiled(np.frombuffer(row, np.uint8))
        assert got_items.tolist() == expected.items.tolist()
        assert got_scores.tolist() == expected.scores.astype(np.float64).tolist()
    none_items, none_scores = decode_ranked_compiled(np.empty(0, np.uint8))
    assert none_items.size == none_scores.size == 0
    unknown, _ = decode_ranked_compiled(np.frombuffer(b"\x03abc", np.uint8))
    assert unknown.tolist() == [-1]


def test_publish_read_switch_and_rollback(store: Store) -> None:
    customers = [f"c{j}" for j in range(20)]
    assert store.active_version() is None
    items_v1 = publish(store, "1", customers, seed=1)
    assert store.active_version() is None  # complete but not yet active
    assert store.activate("1") is None
    assert store.active_version() == "1"

    view = store.customer_view("1", "c4")
    assert view.version == "1" and view.candidates.items.tolist() == items_v1[4].tolist()
    assert np.all(np.diff(view.candidates.scores) <= 0)
    assert len(store.customer_view("1", "nobody").candidates) == 0

    table = store.item_table("1")
    assert table.n_items == N_ITEMS and table.index["i7"] == 7
    assert table.categories[table.category[4]] == "Food"
    assert not table.in_stock[0] and table.in_stock[1] and table.repeatable[1]
    assert store.similar("1", [0, 29, 999])[1].items.tolist() == [0, 1, 2, 3, 4]
    assert len(store.similar("1", [999])[0]) == 0
    assert store.ranked_list("1", "popular").items.tolist() == [0, 1, 2, 3, 4]
    assert len(store.ranked_list("1", "trending", category=2)) == 0
    assert set(store.all_lists("1")) == {"popular"}

    items_v2 = publish(store, "2", customers, seed=2)
    assert store.activate("2") == "1"
    assert store.active_version() == "2" and store.previous_version() == "1"
    assert store.customer_view("2", "c4").candidates.items.tolist() == items_v2[4].tolist()
    assert store.rollback() == "1"
    assert store.active_version() == "1" and store.previous_version() == "2"
    assert store.customer_view("1", "c4").candidates.items.tolist() == items_v1[4].tolist()


def test_incomplete_version_cannot_be_activated_and_rerun_is_clean(store: Store) -> None:
    customers = [f"c{j}" for j in range(10)]
    publish(store, "1", customers)
    store.activate("1")
    # a crashed publish of version 2: some candidates written, never finished
    store.begin_version("2")
    items = np.zeros((3, 4), np.int32)
    store.write_candidates("2", ["c0", "c1", "ghost"], items, np.ones((3, 4)), width=2)
    with pytest.raises(redis.ResponseError, match="not complete"):
        store.activate("2")
    assert store.active_version() == "1"
    with pytest.raises(RuntimeError, match="verification"):
        store.finish_version("2", {"customers": 10})
    # re-run: the leftovers of the crash are gone, the new write verifies and switches
    publish(store, "2", customers)
    assert len(store.customer_view("2", "ghost").candidates) == 0
    store.activate("2")
    assert store.active_version() == "2"
    with pytest.raises(ValueError, match="active"):
        store.begin_version("2")


def test_older_versions_expire(redis_url: str, redis_prefix: str) -> None:
    store = Store(connect(redis_url), prefix=redis_prefix, config=StoreConfig(retired_ttl_s=100))
    customers = ["a", "b"]
    for v in ("1", "2", "3"):
        publish(store, v, customers)
        store.activate(v)
    infos = store.versions()
    assert infos["1"].status == "retired" and infos["3"].status == "complete"
    ttl_old = store.client.ttl(store.keys.candidates("1", "a"))
    assert 0 < ttl_old <= 100
    assert store.client.ttl(store.keys.items("1")) > 0
    assert store.client.ttl(store.keys.candidates("2", "a")) == -1  # previous: kept
    assert store.client.ttl(store.keys.candidates("3", "a")) == -1
    with pytest.raises(redis.ResponseError):
        store.activate("1")  # a retired version cannot come back


def test_events_update_state_and_stream(store: Store) -> None:
    t0 = 1_700_000_000.0
    events = [
        OnlineEvent("c1", "i1", "view", t0),
        OnlineEvent("c1", "i2", "add_to_cart", t0 + 1, quantity=2.0),
        OnlineEvent("c1", "i3", "add_to_cart", t0 + 2),
        OnlineEvent("c1", "i3", "remove_from_cart", t0 + 3),
        OnlineEvent("c1", "i2", "purchase", t0 + 4, price=9.5, channel="web"),
        OnlineEvent("c2", "i9", "view", t0 + 5, session_id="s1"),
    ]
    assert store.record_events(events) == 6
    store.record_email_sends({"c1": ["i5", "i6"], "c2": ["i5"]}, t0 + 10)
    store.record_email_sends({"c1": ["i5"]}, t0 + 20)
    state = store.customer_view("none", "c1").state
    assert [a.item_id for a in state.recent] == ["i2", "i3", "i3", "i2", "i1"]
    assert state.recent[0].event_type == "purchase" and state.recent[0].ts == t0 + 4
    assert state.cart == ()  # i2 bought, i3 removed
    assert state.purchased == {"i2": t0 + 4}
    assert state.email_sent == {"i5": (t0 + 10, t0 + 20), "i6": (t0 + 10,)}

    entries = store.read_stream()
    assert len(entries) == 6
    assert entries[4][1] == events[4]
    assert entries[1][1] == events[1] and entries[5][1] == events[5]
    store.mark_exported(entries[2][0])
    assert [e.event_type for _, e in store.read_stream()] == [
        "remove_from_cart",
        "purchase",
        "view",
    ]


def test_recent_activity_and_email_sends_are_capped(redis_url: str, redis_prefix: str) -> None:
    cfg = StoreConfig(recent_cap=3, email_window_s=100, email_cap=4)
    store = Store(connect(redis_url), prefix=redis_prefix, config=cfg)
    store.record_events([OnlineEvent("c", f"i{j}", "view", float(j)) for j in range(10)])
    assert [a.item_id for a in store.customer_view("x", "c").state.recent] == ["i9", "i8", "i7"]
    store.record_email_sends({"c": ["old"]}, 1000.0)
    store.record_email_sends({"c": ["a", "b", "c"]}, 1150.0)  # "old" is past the window
    store.record_email_sends({"c": ["d", "e"]}, 1160.0)  # cap 4: oldest sends go
    sent = store.customer_view("x", "c").state.email_sent
    assert "old" not in sent and sum(len(v) for v in sent.values()) == 4
    assert {"d", "e"} <= set(sent)


@pytest.mark.parametrize("bad", ["", " a", "a\u3000", "x\x1fy", "x\ny", "z" * 257, "\ud800"])
def test_bad_ids_are_rejected_before_redis(store: Store, bad: str) -> None:
    with pytest.raises(ValueError):
        check_id(bad)
    with pytest.raises(ValueError):
        store.record_events([OnlineEvent(bad, "i1", "view", 1.0)])
    assert store.read_stream() == []


def test_bytes_per_customer_at_100_candidates(store: Store) -> None:
    n_items = 200_000
    rng = np.random.default_rng(0)
    customers = [f"{1_000_000 + j}" for j in range(200)]
    items = rng.integers(0, n_items, (len(customers), 100)).astype(np.int32)
    scores = np.sort(rng.random(items.shape).astype(np.float32), axis=1)[:, ::-1]
    store.begin_version("7")
    payload = store.write_candidates("7", customers, items, scores, width=item_width(n_items))
    assert payload == len(customers) * 601
    per_customer = store.bytes_per_customer("7", customers[:50])
    assert 601 < per_customer <= 1024


@pytest.mark.parametrize("transport", ["redis-py", "fastredis"])
def test_async_store_reads_like_the_sync_one(
    store: Store, redis_url: str, redis_prefix: str, transport: str
) -> None:
    customers = ["c1", "c2"]
    items = publish(store, "1", customers)
    store.activate("1")
    store.record_events([OnlineEvent("c2", "i7", "purchase", 4.25, price=1.5)])

    async def run() -> None:
        client: Any = connect_async(redis_url)
        if transport == "fastredis":
            client = FastRedis(redis_url, client, timeout=2.0)
        astore = AsyncStore(client, prefix=redis_prefix)
        assert astore.raw_reads == (transport == "fastredis")
        try:
            await astore.record_events([OnlineEvent("c2", "i3", "add_to_cart", 5.0)])
            await astore.record_email_sends({"c2": ["i4"]}, 6.0)
            view = await astore.customer_view_active("c2", version_hint="1")
            assert view.version == "1"
            assert view.candidates.items.tolist() == items[1].tolist()
            assert view.state.cart == ("i3",) and "i4" in view.state.email_sent
            assert view.state == store.customer_view("1", "c2").state  # every field alike
            assert view.state.purchased == {"i7": 4.25}
            views = await astore.customer_views("1", ["c1", "c2", "c3"])
            assert [len(v.candidates) for v in views] == [10, 10, 0]
            stale = await astore.customer_view_active("c1", version_hint="0")
            assert stale.version == "1" and len(stale.candidates) == 10
            assert (await astore.item_table("1")).n_items == N_ITEMS
            assert len((await astore.similar("1", [3]))[0]) == 5
            assert len(await astore.ranked_list("1", "popular")) == 5
        finally:
            await client.aclose()

    asyncio.run(run())
    assert store.customer_view("1", "c2").state.cart == ("i3",)


def test_one_publisher_per_version_and_a_dead_ones_lease_lapses(
    redis_url: str, redis_prefix: str
) -> None:
    config = StoreConfig(publish_lease_s=0.3)
    first = Store(connect(redis_url), prefix=redis_prefix, config=config)
    second = Store(connect(redis_url), prefix=redis_prefix, config=config)
    first.begin_version("5")
    with pytest.raises(PublishInProgress, match="another process"):
        second.begin_version("5")
    second.begin_version("6")  # other versions are free
    # the first publisher stops writing (killed): its lease lapses, a re-run takes over ...
    time.sleep(0.5)
    second.begin_version("5")
    # ... and the first one, should it wake up, cannot write into the re-run
    with pytest.raises(PublishInProgress, match="lost the publishing lease"):
        first.write_item_table(item_table("5"))
    second.release("5")
    second.release("6")


def test_finishing_or_failing_a_publish_frees_the_version(store: Store, redis_url: str) -> None:
    other = Store(connect(redis_url), prefix=store.prefix)
    publish(store, "1", ["a", "b"])  # finish_version lets go
    publish(other, "1", ["a", "b"])  # a re-publish of a version that is not active
    store.begin_version("2")
    store.release("2")  # what write_version does when a publish fails
    other.begin_version("2")
    other.release("2")
