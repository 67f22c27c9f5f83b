"""Encoding and decoding of everything the store writes: the ONE place that knows the bytes.

* A ranked list (candidates, similar items, popular lists): one header byte giving the item
  index width (2: uint16 when the version has < 65,535 items, else 4: int32), then ``n``
  records of (item index, float16 score), little endian. Scores are approximate (float16,
  clipped to +-65,504); the stored order is the ranking. 100 candidates take 401 or 601
  bytes. :func:`decode_ranked_compiled` reads the same bytes in compiled code.
* A timestamp (activity, purchases, email sends, the events stream): epoch seconds with six
  decimals (:func:`encode_ts`, microseconds), which the compiled path parses exactly as
  Python's ``float()`` does (``serving.fastpath``). Entries of earlier releases (``repr``
  timestamps) still decode here; the compiled path sends their customer to the general path.
* Recent activity: ``ts SEP event type SEP item id``; an email send: the member
  ``item id SEP ts`` scored by ``ts``; a purchase: hash field item id -> ts.
* An online event in the stream: short field names (:data:`EVENT_FIELDS`), floats as ``repr``.
* The item table: ids and category names joined with :data:`SEP`, numeric columns as raw
  little-endian arrays. Version info: JSON.

Ids inside a value are joined with :data:`SEP` (U+001F), a control character no id holds
(``features.ids``). Replies may come as bytes (redis-py, hiredis) or str.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

import numpy as np
from numba import njit

from serving.types import Activity, Candidates, CustomerView, ItemTable, OnlineEvent, OnlineState

SEP = "\x1f"  # unit separator: joins ids inside one value (ids never contain control chars)
SEP_BYTE = ord(SEP)  # the same, for compiled readers of raw replies
_F16_MAX = 65504.0


def to_str(x: Any) -> str:
    """A reply (bytes or str, or a number) as str."""
    return x.decode() if type(x) is bytes else str(x)


# --- ranked lists ---------------------------------------------------------------------------

_RECORD_DTYPES = {
    width: np.dtype([("i", "<u2" if width == 2 else "<i4"), ("s", "<f2")]) for width in (2, 4)
}


def _record_dtype(width: int) -> np.dtype:
    found = _RECORD_DTYPES.get(width)
    if found is None:
        raise ValueError(f"unknown item index width {width} in a ranked list")
    return found


def item_width(n_items: int) -> int:
    """Bytes per item index for a version with ``n_items`` items (2 or 4)."""
    return 2 if n_items < 65535 else 4


def encode_ranked_rows(items: np.ndarray, scores: np.ndarray, width: int) -> list[bytes]:
    """Encode many ranked lists at once (rows of ``items``; -1 marks the end of a row)."""
    items = np.asarray(items)
    scores = np.asarray(scores)
    if items.ndim != 2 or items.shape != scores.shape:
        raise ValueError("items and scores must be 2-d arrays of the same shape")
    n_rows, k = items.shape
    valid = items >= 0
    counts = valid.sum(axis=1)
    if k and not np.array_equal(valid, np.arange(k)[None, :] < counts[:, None]):
        # a -1 inside a row: compact each row so valid entries come first (rare)
        order = np.argsort(~valid, axis=1, kind="stable")
        items = np.take_along_axis(items, order, axis=1)
        scores = np.take_along_axis(scores, order, axis=1)
    rec = np.zeros((n_rows, k), dtype=_record_dtype(width))
    rec["i"] = np.where(items >= 0, items, 0)
    rec["s"] = np.clip(
        np.nan_to_num(scores, nan=0.0, posinf=_F16_MAX, neginf=-_F16_MAX), -_F16_MAX, _F16_MAX
    )
    stride = 1 + k * (width + 2)
    full = np.empty((n_rows, stride), dtype=np.uint8)
    full[:, 0] = width
    full[:, 1:] = rec.view(np.uint8).reshape(n_rows, k * (width + 2))
    buf = full.tobytes()
    ends = (1 + counts * (width + 2)).tolist()
    return [buf[r * stride : r * stride + e] for r, e in enumerate(ends)]


def encode_ranked(items: np.ndarray, scores: np.ndarray, width: int = 4) -> bytes:
    """Encode one ranked list."""
    return encode_ranked_rows(np.asarray(items)[None, :], np.asarray(scores)[None, :], width)[0]


def decode_ranked(payload: bytes | None) -> Candidates:
    """Decode a ranked list; ``None`` (missing key) gives an empty list."""
    if not payload:
        return Candidates.empty()
    rec = np.frombuffer(payload, dtype=_record_dtype(payload[0]), offset=1)
    return Candidates(rec["i"].astype(np.int32), rec["s"].astype(np.float32))


@njit(cache=True, nogil=True, boundscheck=False)
def decode_ranked_compiled(payload: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`decode_ranked` for compiled callers (``serving.fastpath``): ``payload`` as
    uint8 (empty: no list) -> int64 indices and float64 scores. A payload of an unknown
    index width gives -1 as its only index (the caller declines it)."""
    if payload.shape[0] == 0:
        return np.empty(0, np.int64), np.empty(0, np.float64)
    width = payload[0]
    if width != 2 and width != 4:
        return np.full(1, -1, np.int64), np.zeros(1)
    step = width + 2
    n = (payload.shape[0] - 1) // step
    items = np.empty(n, np.int64)
    scores = np.empty(n)
    for r in range(n):
        at = 1 + r * step
        idx = np.int64(payload[at]) | (np.int64(payload[at + 1]) << 8)
        if width == 4:
            idx |= (np.int64(payload[at + 2]) << 16) | (np.int64(payload[at + 3]) << 24)
            if idx >= 2**31:
                idx -= 2**32  # int32
        items[r] = idx
        half = np.int64(payload[at + width]) | (np.int64(payload[at + width + 1]) << 8)
        exponent = (half >> 10) & 0x1F
        fraction = half & 0x3FF
        value: float
        if exponent == 0:
            value = fraction * 2.0**-24  # subnormal
        elif exponent == 31:
            value = math.inf if fraction == 0 else math.nan
        else:
            value = (1.0 + fraction / 1024.0) * 2.0 ** (exponent - 15)
        scores[r] = -value if half & 0x8000 else value
    return items, scores


def decode_lists(raw: Mapping[Any, bytes]) -> dict[str, Candidates]:
    """Every ranked list of a hash (HGETALL reply) by field name."""
    return {to_str(k): decode_ranked(v) for k, v in raw.items()}


# --- timestamps and online state --------------------------------------------------------------


def encode_ts(ts: float) -> str:
    """A timestamp as stored: epoch seconds with 6 decimals (ValueError if not finite)."""
    if not math.isfinite(ts):
        raise ValueError("ts must be a finite epoch timestamp")
    return f"{ts:.6f}"


def encode_activity(ts: float, event_type: str, item_id: str) -> str:
    """One recent-activity entry: the timestamp, the event type, the item."""
    return f"{encode_ts(ts)}{SEP}{event_type}{SEP}{item_id}"


def decode_activity(entry: bytes | str) -> Activity:
    ts, event_type, item = to_str(entry).split(SEP, 2)
    return Activity(item, event_type, float(ts))


def encode_email_send(item_id: str, ts: float) -> str:
    """The member of one email send (unique per item and time; scored by ``ts``)."""
    return f"{item_id}{SEP}{encode_ts(ts)}"


def decode_email_send(member: bytes | str) -> str:
    """The item id of an email send member."""
    return to_str(member).split(SEP, 1)[0]


def decode_state(
    recent_raw: Iterable[Any],
    cart_raw: Iterable[Any],
    buy_pairs: Iterable[tuple[Any, Any]],
    mail_pairs: Iterable[tuple[Any, Any]],
) -> OnlineState:
    """A customer's online state from the replies of its four keys (bytes or str)."""
    email: dict[str, list[float]] = {}
    for member, score in mail_pairs:
        email.setdefault(decode_email_send(member), []).append(float(score))
    return OnlineState(
        tuple(decode_activity(entry) for entry in recent_raw),
        tuple(sorted(to_str(x) for x in cart_raw)),
        {to_str(k): float(v) for k, v in buy_pairs},
        {k: tuple(v) for k, v in email.items()},
    )


def pairs(reply: Any) -> Iterable[tuple[Any, Any]]:
    """(field, value) pairs of an HGETALL or ZRANGE WITHSCORES reply in any transport's
    shape: a dict (redis-py's HGETALL), a list of pairs (redis-py's ZRANGE WITHSCORES) or a
    flat list (the raw transport)."""
    if isinstance(reply, dict):
        return reply.items()
    if reply and isinstance(reply[0], list | tuple):
        return reply  # type: ignore[no-any-return]
    return zip(reply[::2], reply[1::2], strict=True)


def decode_customer(version: str, replies: Sequence[Any]) -> CustomerView:
    """A customer's view from the replies to its read (``OnlinePlans.customer_commands``:
    candidates, recent activity, cart, purchases[, email sends])."""
    mailed = replies[4] if len(replies) > 4 else ()
    state = decode_state(replies[1], replies[2], pairs(replies[3]), pairs(mailed))
    return CustomerView(version, decode_ranked(replies[0]), state)


def flat(reply: Any) -> list[bytes]:
    """A reply of a cart, purchases or email sends key as the flat list of bytes the raw
    transport returns (``[member, ...]`` or ``[field, value, ...]``); redis-py's shapes
    (a set, a dict, a list of (member, score) pairs) are flattened to it."""
    if type(reply) is list and (not reply or type(reply[0]) is bytes):
        return reply
    if isinstance(reply, dict):
        reply = [w for kv in reply.items() for w in kv]
    elif reply and isinstance(next(iter(reply)), list | tuple):
        reply = [w for pair in reply for w in pair]
    return [
        x if type(x) is bytes else (repr(x) if type(x) is float else str(x)).encode() for x in reply
    ]


class RawCustomer(NamedTuple):
    """A customer's replies as the transport sent them (``AsyncStore.customer_raw_active``):
    the API's compiled path (``serving.fastpath``) reads raw ones as they are; :meth:`view`
    decodes."""

    version: str
    candidates: bytes | None  # the encoded ranked list (None: no candidates)
    recent: list[bytes]  # activity entries, newest first (encode_activity)
    cart: list[bytes]  # item ids
    bought: list[bytes]  # item id, purchase ts, item id, ts, ...
    mailed: list[bytes]  # send member, ts, ... (empty when not read)

    def view(self) -> CustomerView:
        return decode_customer(self.version, self[1:])


def raw_customer(version: str, replies: Sequence[Any]) -> RawCustomer:
    """A customer's replies to its read (``OnlinePlans.customer_commands``), flattened."""
    mailed = flat(replies[4]) if len(replies) > 4 else []
    return RawCustomer(version, replies[0], replies[1], flat(replies[2]), flat(replies[3]), mailed)


# --- the events stream ------------------------------------------------------------------------

EVENT_FIELDS = {"quantity": "q", "price": "p", "channel": "ch", "session_id": "s", "value": "v"}
"""Stream field of each optional OnlineEvent attribute (besides c, i, t and ts)."""


def encode_event(event: OnlineEvent) -> dict[str, str]:
    """The stream fields of an event (ids already checked by the caller)."""
    fields = {"c": event.customer_id, "i": event.item_id, "t": event.event_type}
    fields["ts"] = encode_ts(event.ts)
    for name, short in EVENT_FIELDS.items():
        value = getattr(event, name)
        if value is not None:
            fields[short] = repr(value) if isinstance(value, float) else str(value)
    return fields


def decode_event(fields: Mapping[Any, Any]) -> OnlineEvent:
    """An event from its stream fields (bytes or str)."""
    f = {to_str(k): to_str(v) for k, v in fields.items()}
    return OnlineEvent(
        customer_id=f["c"],
        item_id=f["i"],
        event_type=f["t"],
        ts=float(f["ts"]),
        quantity=_float_or_none(f.get("q")),
        price=_float_or_none(f.get("p")),
        channel=f.get("ch"),
        session_id=f.get("s"),
        value=_float_or_none(f.get("v")),
    )


def _float_or_none(raw: str | None) -> float | None:
    return float(raw) if raw not in (None, "") else None


# --- versions and the item table --------------------------------------------------------------


@dataclass
class VersionInfo:
    """What the registry knows about one published version."""

    version: str
    status: str = "writing"  # writing | complete | retired
    created_at: float = 0.0
    completed_at: float | None = None
    expires_at: float | None = None
    counts: dict[str, int] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)  # model name/version, run id, ...

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @staticmethod
    def from_json(raw: bytes | str) -> VersionInfo:
        return VersionInfo(**json.loads(raw))


def encode_item_table(table: ItemTable, ids: list[str]) -> dict[str, bytes]:
    """The hash fields of an item table (``ids``: its checked item ids as str)."""
    for name in table.categories:
        if SEP in name:
            raise ValueError(f"category {name!r} contains a control character")
    return {
        "ids": SEP.join(ids).encode(),
        "categories": SEP.join(table.categories).encode(),
        "category": np.asarray(table.category, dtype="<i4").tobytes(),
        "price": np.asarray(table.price, dtype="<f4").tobytes(),
        "in_stock": np.asarray(table.in_stock, dtype=np.uint8).tobytes(),
        "created_at": np.asarray(table.created_at, dtype="<f8").tobytes(),
        "repeatable": np.asarray(table.repeatable, dtype=np.uint8).tobytes(),
    }


def decode_item_table(version: str, raw: Mapping[bytes, bytes]) -> ItemTable:
    """The item table from its hash (HGETALL reply, non-empty)."""
    ids = raw[b"ids"].decode().split(SEP) if raw[b"ids"] else []
    cats = raw[b"categories"].decode().split(SEP) if raw[b"categories"] else []
    return ItemTable(
        version=version,
        item_ids=np.array(ids, dtype=object),
        category=np.frombuffer(raw[b"category"], dtype="<i4").copy(),
        categories=tuple(cats),
        price=np.frombuffer(raw[b"price"], dtype="<f4").copy(),
        in_stock=np.frombuffer(raw[b"in_stock"], dtype=np.uint8).astype(bool),
        created_at=np.frombuffer(raw[b"created_at"], dtype="<f8").copy(),
        repeatable=np.frombuffer(raw[b"repeatable"], dtype=np.uint8).astype(bool),
    )
