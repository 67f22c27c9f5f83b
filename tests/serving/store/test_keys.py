"""serving.store.keys: the key layout, pinned, and the only source of the store's keys."""

from __future__ import annotations

import numpy as np
import pytest
import redis

from serving.store import Keys, Store, item_width
from serving.types import Candidates, ItemTable, OnlineEvent

N_ITEMS = 6


def publish(store: Store, version: str, customers: list[str]) -> None:
    """A complete, active version of ``N_ITEMS`` items written through the store."""
    width = item_width(N_ITEMS)
    items = np.tile(np.arange(3), (len(customers), 1))
    scores = np.ones(items.shape, np.float32)
    store.begin_version(version)
    store.write_item_table(
        ItemTable(
            version,
            np.array([f"i{j}" for j in range(N_ITEMS)], dtype=object),
            np.zeros(N_ITEMS, np.int32),
            ("c",),
            np.ones(N_ITEMS, np.float32),
            np.ones(N_ITEMS, bool),
            np.zeros(N_ITEMS),
            np.zeros(N_ITEMS, bool),
        )
    )
    store.write_candidates(version, customers, items, scores, width=width)
    rows = np.arange(N_ITEMS)
    store.write_similar(
        version, rows, (rows[:, None] + 1) % N_ITEMS, np.ones((N_ITEMS, 1)), width=width
    )
    popular = Candidates(np.arange(3, dtype=np.int32), np.ones(3, np.float32))
    store.write_lists(version, {store.list_name("popular"): popular}, width=width)
    store.finish_version(version, {"customers": len(customers), "similar": N_ITEMS})
    store.activate(version)


def test_the_layout_is_the_published_one() -> None:
    """The key names published data lives under (a change here strands published data)."""
    k = Keys("p")
    assert (k.active, k.previous, k.versions) == ("{p}:active", "{p}:previous", "{p}:versions")
    assert (k.stream, k.exported) == ("{p}:events", "{p}:events:exported")
    assert k.lease("V") == "{p}:publishing:V"
    assert k.candidates("V", "c 1") == "p:v:V:{c:c 1}"
    assert [k.meta("V"), k.items("V"), k.lists("V"), k.similar("V", 7)] == [
        "p:v:V:meta",
        "p:v:V:items",
        "p:v:V:lists",
        "p:v:V:s:7",
    ]
    assert [k.recent("c"), k.cart("c"), k.bought("c"), k.mailed("c")] == [
        "p:{c:c}:r",
        "p:{c:c}:cart",
        "p:{c:c}:buy",
        "p:{c:c}:mail",
    ]
    assert k.customer("V", "c") == (k.candidates("V", "c"), *[k.recent("c"), k.cart("c")]) + (
        k.bought("c"),
        k.mailed("c"),
    )
    assert k.namespace("V") == "p:v:V:"
    for key in (k.candidates("V", "c"), k.meta("V"), k.similar("V", 1)):
        assert key.startswith(k.namespace("V"))  # unlinking a version's namespace takes all


@pytest.mark.parametrize("prefix", ["", "a{b", "a}", "a*", "a b", "x?", "[x]"])
def test_a_prefix_with_braces_or_globs_is_refused(prefix: str) -> None:
    with pytest.raises(ValueError, match="prefix"):
        Keys(prefix)


def test_every_key_in_redis_is_one_keys_names(store: Store) -> None:
    """After a publish, events, email sends and an export mark, each key under the prefix
    is one that :class:`Keys` builds (nothing else writes keys)."""
    publish(store, "v1", customers=[f"c{j}" for j in range(10)])
    store.record_events(
        [
            OnlineEvent("c1", "i1", "view", 1.0),
            OnlineEvent("c1", "i2", "add_to_cart", 2.0),
            OnlineEvent("c2", "i3", "purchase", 3.0),
        ]
    )
    store.record_email_sends({"c1": ["i4"]}, 4.0)
    store.mark_exported("0-1")
    k = store.keys
    named = {k.active, k.stream, k.exported, k.versions, k.meta("v1"), k.items("v1")}
    named |= {k.lists("v1")} | {k.similar("v1", i) for i in range(N_ITEMS)}
    named |= {key for c in ("c1", "c2") for key in k.customer("v1", c)}
    named |= {k.candidates("v1", f"c{j}") for j in range(10)}
    found = {x.decode() for x in store.client.scan_iter(match=f"*{store.prefix}*", count=1000)}
    assert found and found <= named, found - named
    slots = {redis.crc.key_slot(x.encode()) for x in (k.active, k.versions, k.stream, k.lease("v"))}
    assert len(slots) == 1  # the Lua scripts' keys share one slot
