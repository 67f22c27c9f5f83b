"""serving.store.codec: the bytes the store writes, pinned, and every decoder's input shapes."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from serving.store.codec import (
    SEP,
    RawCustomer,
    VersionInfo,
    decode_activity,
    decode_event,
    decode_item_table,
    decode_ranked,
    decode_state,
    encode_activity,
    encode_email_send,
    encode_event,
    encode_item_table,
    encode_ranked,
    encode_ts,
    pairs,
)
from serving.types import Activity, ItemTable, OnlineEvent, OnlineState


def test_a_ranked_list_is_the_published_bytes() -> None:
    """Width byte, then (index, float16 score) little endian (published data reads back)."""
    assert encode_ranked(np.array([1, 258]), np.array([1.0, -2.0]), width=2) == bytes.fromhex(
        "020100003c020100c0"
    )
    assert encode_ranked(np.array([70000]), np.array([0.5]), width=4) == bytes.fromhex(
        "04701101000038"
    )
    back = decode_ranked(bytes.fromhex("020100003c020100c0"))
    assert back.items.tolist() == [1, 258] and back.scores.tolist() == [1.0, -2.0]


def test_one_timestamp_format_microseconds() -> None:
    assert encode_ts(1761088697.3443801) == "1761088697.344380"
    assert encode_ts(5.0) == "5.000000"
    for bad in (math.nan, math.inf, -math.inf):
        with pytest.raises(ValueError, match="finite"):
            encode_ts(bad)
    entry = encode_activity(1761088697.3443801, "view", "a b{c}")
    assert entry == f"1761088697.344380{SEP}view{SEP}a b{{c}}"
    assert decode_activity(entry.encode()) == Activity("a b{c}", "view", 1761088697.34438)
    assert encode_email_send("i1", 7.25) == f"i1{SEP}7.250000"


def test_entries_of_earlier_releases_still_decode() -> None:
    """Earlier releases wrote purchases, email sends and stream events with ``repr``
    timestamps; they read back exactly."""
    ts = 1761088697.3443801
    old_entry = f"{ts!r}{SEP}view{SEP}i1".encode()
    state = decode_state([old_entry], [b"i2"], [(b"i3", repr(ts).encode())], [])
    assert state.recent[0].ts == ts and state.purchased == {"i3": ts}
    old_fields = {b"c": b"c1", b"i": b"i1", b"t": b"purchase", b"ts": repr(ts).encode()}
    assert decode_event(old_fields) == OnlineEvent("c1", "i1", "purchase", ts)


def test_stream_events_round_trip() -> None:
    full = OnlineEvent("c1", "i1", "purchase", 12.5, 2.0, 9.99, "web", "s1", 19.98)
    bare = OnlineEvent("c2", "i2", "view", 13.0)
    for event in (full, bare):
        fields = encode_event(event)
        assert fields["ts"] == encode_ts(event.ts)
        assert decode_event({k.encode(): v.encode() for k, v in fields.items()}) == event
    assert set(encode_event(bare)) == {"c", "i", "t", "ts"}


def test_reply_pairs_in_every_transports_shape() -> None:
    flat = [b"a", b"1", b"b", b"2"]
    expected = [(b"a", b"1"), (b"b", b"2")]
    assert list(pairs(flat)) == expected  # raw transport (hiredis)
    assert list(pairs(dict(expected))) == expected  # redis-py HGETALL
    assert [tuple(p) for p in pairs([[b"a", b"1"], [b"b", b"2"]])] == expected  # ZRANGE
    assert list(pairs([])) == list(pairs({})) == []


def test_a_raw_customer_decodes_like_its_parts() -> None:
    recent = [encode_activity(3.0, "view", "i1").encode()]
    raw = RawCustomer("v", None, recent, [b"i2"], [b"i3", b"2.000000"], [b"i4\x1f1.0", b"1.0"])
    view = raw.view()
    assert view.version == "v" and len(view.candidates) == 0
    assert view.state == OnlineState(
        (Activity("i1", "view", 3.0),), ("i2",), {"i3": 2.0}, {"i4": (1.0,)}
    )


def test_item_table_and_version_info_round_trip() -> None:
    table = ItemTable(
        "v",
        np.array(["a", "b:{x}"], dtype=object),
        np.array([0, -1], np.int32),
        ("Home > Mugs",),
        np.array([1.5, np.nan], np.float32),
        np.array([True, False]),
        np.array([0.0, np.nan]),
        np.array([False, True]),
    )
    mapping = encode_item_table(table, ["a", "b:{x}"])
    back = decode_item_table("v", {k.encode(): v for k, v in mapping.items()})
    assert back.item_ids.tolist() == ["a", "b:{x}"] and back.categories == table.categories
    for name in ("category", "price", "in_stock", "created_at", "repeatable"):
        np.testing.assert_array_equal(getattr(back, name), getattr(table, name))
    bad = replace(table, categories=(f"a{SEP}b",))
    with pytest.raises(ValueError, match="control character"):
        encode_item_table(bad, ["a", "b:{x}"])
    info = VersionInfo("v", "complete", 1.0, 2.0, None, {"customers": 3}, {"model": "m"})
    assert VersionInfo.from_json(info.to_json().encode()) == info
