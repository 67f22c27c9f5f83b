"""The Redis store: the ONLY module that knows the key layout and the encoding.

Key layout (``p`` = prefix, ``V`` = a published version, ``id`` = an external customer id)::

    {p}:active  {p}:previous           version pointers (one slot: switched by a Lua script)
    {p}:versions                       hash V -> JSON VersionInfo (status, counts, times)
    {p}:events  {p}:events:exported    Redis Stream of online events + last exported id
    {p}:publishing:V                   lease of the process publishing V (expires)
    p:v:V:{c:id}                       candidates of a customer (binary, see below)
    p:v:V:meta                         hash of write counters of version V
    p:v:V:items                        hash: the item table (ids, categories, price, ...)
    p:v:V:lists                        hash: popular / trending lists, global and per category
    p:v:V:s:<item index>               similar items of an item
    p:{c:id}:r                         recent activity (list, newest first, capped)
    p:{c:id}:cart                      cart (set of item ids)
    p:{c:id}:buy                       purchased items (hash item id -> last purchase ts)
    p:{c:id}:mail                      email sends (zset "item\\x1fts" scored by ts)

Every per-customer key carries the hash tag ``{c:id}``, so a request's keys (the version's
candidates and the customer's online state) live in one Redis Cluster slot and are read in
one pipelined round trip. Ids follow the one id rule (``features.ids``: any Unicode without
control characters or padding, so ``{``, ``}``, ``:`` and spaces included) and are written
as UTF-8 bytes. An id holding ``}`` still keeps one customer's keys together: Redis hashes
from the first ``{`` to the next ``}``, the same bytes (``c:`` and the id up to its first
``}``) in every key of that customer (two such customers may then share a slot, which is
harmless). Ids inside a value are joined with :data:`SEP` (U+001F), a control character no
id holds.

Encoding of a ranked list (candidates, similar items, popular lists): one header byte giving
the item index width (2: uint16 when the version has < 65,535 items, else 4: int32), then
``n`` records of (item index, float16 score), little endian. Scores are approximate (float16,
clipped to +-65,504); the stored order is the ranking. 100 candidates take 401 or 601 bytes.

Publishing writes version V under its own namespace with raw pipelined ``SET`` commands,
verifies the counters, marks V complete, then switches ``active`` atomically (the previous
version is kept for rollback; older ones get a TTL). Re-running a publish of a version that is
not active first deletes its namespace, so a crashed half-written version never becomes
active and never leaves stale keys behind. One process at a time writes a version: it holds
a lease that every write renews (``StoreConfig.publish_lease_s``); a second publisher of V
gets :class:`PublishInProgress`, and a killed publisher's lease lapses by itself.

:class:`Store` (redis.Redis) and :class:`AsyncStore` (redis.asyncio) share the key layout,
the command plans and the decoders; only the I/O differs.
"""

from __future__ import annotations

import json
import math
import re
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

import numpy as np
import redis
import redis.asyncio
from numba import njit

from features.ids import check_id
from serving.connection import connect, connect_async
from serving.types import (
    Activity,
    Candidates,
    CustomerView,
    ItemTable,
    OnlineEvent,
    OnlineState,
)

__all__ = [
    "AsyncStore",
    "Store",
    "StoreConfig",
    "VersionInfo",
    "connect",
    "connect_async",
    "decode_ranked",
    "encode_ranked",
    "check_id",
]

SEP = "\x1f"  # unit separator: joins ids inside one value (ids never contain control chars)
_VERSION_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_F16_MAX = 65504.0

CART_EVENTS = {"add_to_cart": "add", "remove_from_cart": "remove", "purchase": "remove"}


def check_version(version: str) -> str:
    if not isinstance(version, str) or not _VERSION_RE.match(version):
        raise ValueError(f"version {version!r} must match {_VERSION_RE.pattern}")
    return version


# --- encoding ------------------------------------------------------------------------------


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


def encode_activity(ts: float, event_type: str, item_id: str) -> str:
    """One recent-activity entry: the timestamp with 6 decimals (microseconds; compiled
    code reads that back exactly, see ``serving.fastpath``), the event type, the item."""
    return f"{ts:.6f}{SEP}{event_type}{SEP}{item_id}"


def decode_ranked(payload: bytes | None) -> Candidates:
    """Decode a ranked list; ``None`` (missing key) gives an empty list."""
    if not payload:
        return Candidates.empty()
    rec = np.frombuffer(payload, dtype=_record_dtype(payload[0]), offset=1)
    return Candidates(rec["i"].astype(np.int32), rec["s"].astype(np.float32))


# --- versions -----------------------------------------------------------------------------


class PublishInProgress(RuntimeError):
    """Another publisher holds the version (or took it over from this one)."""


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


@dataclass(frozen=True)
class StoreConfig:
    """Caps and lifetimes of online state and of retired versions."""

    recent_cap: int = 50  # recent-activity entries kept per customer
    state_ttl_s: int = 90 * 86400  # recent activity and cart expire after this idle time
    purchased_ttl_s: int = 730 * 86400
    email_window_s: int = 60 * 86400  # email sends older than this are forgotten
    email_cap: int = 500  # sends kept per customer
    stream_maxlen: int = 10_000_000  # approximate cap of the events stream
    retired_ttl_s: int = 3600  # older versions expire this long after being replaced
    write_batch: int = 4000  # commands per pipeline when publishing
    publish_lease_s: float = 300.0  # a publisher's claim on a version lapses this long after
    # its last write: a publisher killed mid-way blocks a re-run of that version at most this long


_SWITCH = """
local raw = redis.call('HGET', KEYS[3], ARGV[1])
if not raw then return redis.error_reply('unknown version ' .. ARGV[1]) end
if cjson.decode(raw)['status'] ~= 'complete' then
  return redis.error_reply('version ' .. ARGV[1] .. ' is not complete')
end
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then return cur end
redis.call('SET', KEYS[1], ARGV[1])
if cur then redis.call('SET', KEYS[2], cur) end
return cur or ''
"""
"""Atomically make ARGV[1] active (it must be complete) and the old active the previous."""

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
"""Extend a publishing lease if the caller (token ARGV[1]) still holds it."""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
"""Drop a publishing lease if the caller (token ARGV[1]) still holds it."""

_ROLLBACK = """
local prev = redis.call('GET', KEYS[2])
if not prev then return redis.error_reply('no previous version to roll back to') end
local raw = redis.call('HGET', KEYS[3], prev)
if (not raw) or cjson.decode(raw)['status'] ~= 'complete' then
  return redis.error_reply('previous version ' .. prev .. ' is no longer available')
end
local cur = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[1], prev)
if cur then redis.call('SET', KEYS[2], cur) else redis.call('DEL', KEYS[2]) end
return prev
"""
"""Atomically swap active and previous (a second rollback undoes the first)."""


Command = tuple[str, tuple[Any, ...], dict[str, Any]]
_CUSTOMER_CMDS = 5  # commands per customer in _plan_customer


def _cmd(name: str, *args: Any, **kwargs: Any) -> Command:
    return (name, args, kwargs)


def _s(x: bytes | str) -> str:
    return x.decode() if isinstance(x, bytes) else x


def _str(x: Any) -> str:
    return x.decode() if type(x) is bytes else str(x)


def _customer_view(
    version: str,
    payload: bytes | None,
    recent_raw: Iterable[Any],
    cart_raw: Iterable[Any],
    buy_pairs: Iterable[tuple[Any, Any]],
    mail_pairs: Iterable[tuple[Any, Any]],
) -> CustomerView:
    """Decode a customer's candidates and online state (replies as bytes or str)."""
    recent = []
    for entry in recent_raw:
        ts, event_type, item = _str(entry).split(SEP, 2)
        recent.append(Activity(item, event_type, float(ts)))
    email: dict[str, list[float]] = {}
    for member, score in mail_pairs:
        email.setdefault(_str(member).split(SEP, 1)[0], []).append(float(score))
    state = OnlineState(
        tuple(recent),
        tuple(sorted(_str(x) for x in cart_raw)),
        {_str(k): float(v) for k, v in buy_pairs},
        {k: tuple(v) for k, v in email.items()},
    )
    return CustomerView(version, decode_ranked(payload), state)


class RawCustomer(NamedTuple):
    """A customer's replies as Redis sent them (:meth:`AsyncStore.customer_raw_active`): the
    API's compiled path (``serving.fastpath``) reads them as they are; :meth:`view` decodes."""

    version: str
    candidates: bytes | None  # the encoded ranked list (None: no candidates)
    recent: list[bytes]  # activity, newest first: ts (6 decimals) SEP event type SEP item
    cart: list[bytes]  # item ids
    bought: list[bytes]  # item id, purchase ts, item id, ts, ...
    mailed: list[bytes]  # send member, ts, ...

    def view(self) -> CustomerView:
        b, m = self.bought, self.mailed
        pairs = zip(b[::2], b[1::2], strict=True), zip(m[::2], m[1::2], strict=True)
        return _customer_view(self.version, self.candidates, self.recent, self.cart, *pairs)


def _checked(replies: list[Any]) -> list[Any]:
    """``replies`` after raising the first error reply among them."""
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return replies


class _StoreBase:
    """Key layout, command plans and decoders shared by the sync and async stores."""

    def __init__(self, prefix: str = "recsys", config: StoreConfig | None = None) -> None:
        if not prefix or any(c in prefix for c in "{}*?[] "):
            raise ValueError(f"prefix {prefix!r} must be non-empty without braces or globs")
        self.prefix = prefix
        self.config = config or StoreConfig()
        tag = f"{{{prefix}}}"  # version pointers, registry and stream share one slot
        self.k_active = f"{tag}:active"
        self.k_previous = f"{tag}:previous"
        self.k_versions = f"{tag}:versions"
        self.k_stream = f"{tag}:events"
        self.k_exported = f"{tag}:events:exported"

    # ---- keys ------------------------------------------------------------------------------
    def _ns(self, version: str) -> str:
        return f"{self.prefix}:v:{version}:"

    def k_candidates(self, version: str, customer_id: str) -> str:
        return f"{self.prefix}:v:{version}:{{c:{customer_id}}}"

    def k_meta(self, version: str) -> str:
        return self._ns(version) + "meta"

    def k_items(self, version: str) -> str:
        return self._ns(version) + "items"

    def k_lists(self, version: str) -> str:
        return self._ns(version) + "lists"

    def k_similar(self, version: str, item: int) -> str:
        return f"{self._ns(version)}s:{item}"

    def k_lease(self, version: str) -> str:
        return f"{{{self.prefix}}}:publishing:{version}"

    def _k_state(self, customer_id: str, what: str) -> str:
        return f"{self.prefix}:{{c:{customer_id}}}:{what}"

    # ---- plans and decoders ------------------------------------------------------------------
    def _raw_customer(
        self, version: str, customer_id: str, mail: bool = True
    ) -> list[tuple[Any, ...]]:
        """:meth:`_plan_customer` as raw commands (for a transport that returns raw replies:
        flat lists for HGETALL and ZRANGE WITHSCORES, lists for SMEMBERS); without ``mail``
        the email sends are not read (only the email context uses them)."""
        state = f"{self.prefix}:{{c:{customer_id}}}:"
        cmds: list[tuple[Any, ...]] = [
            ("GET", f"{self.prefix}:v:{version}:{{c:{customer_id}}}"),
            ("LRANGE", state + "r", 0, self.config.recent_cap - 1),
            ("SMEMBERS", state + "cart"),
            ("HGETALL", state + "buy"),
        ]
        if mail:
            cmds.append(("ZRANGE", state + "mail", 0, -1, "WITHSCORES"))
        return cmds

    def _plan_customer(self, version: str, customer_id: str) -> list[Command]:
        return [
            _cmd("get", self.k_candidates(version, customer_id)),
            _cmd("lrange", self._k_state(customer_id, "r"), 0, self.config.recent_cap - 1),
            _cmd("smembers", self._k_state(customer_id, "cart")),
            _cmd("hgetall", self._k_state(customer_id, "buy")),
            _cmd("zrange", self._k_state(customer_id, "mail"), 0, -1, withscores=True),
        ]

    def _decode_customer(self, version: str, res: Sequence[Any]) -> CustomerView:
        """A customer's view from redis-py's replies to :meth:`_plan_customer`."""
        payload, recent_raw, cart_raw, buy_raw, mail_raw = res[:5]
        return _customer_view(version, payload, recent_raw, cart_raw, buy_raw.items(), mail_raw)

    def _plan_events(self, events: Iterable[OnlineEvent]) -> list[Command]:
        cfg = self.config
        cmds: list[Command] = []
        for ev in events:
            cid = check_id(ev.customer_id, "customer_id")
            item = check_id(ev.item_id, "item_id")
            etype = check_id(ev.event_type, "event_type")
            if not math.isfinite(ev.ts):
                raise ValueError("ts must be a finite epoch timestamp")
            k_recent = self._k_state(cid, "r")
            cmds += [
                _cmd("lpush", k_recent, encode_activity(ev.ts, etype, item)),
                _cmd("ltrim", k_recent, 0, cfg.recent_cap - 1),
                _cmd("expire", k_recent, cfg.state_ttl_s),
            ]
            cart_op = CART_EVENTS.get(etype)
            k_cart = self._k_state(cid, "cart")
            if cart_op == "add":
                cmds += [_cmd("sadd", k_cart, item), _cmd("expire", k_cart, cfg.state_ttl_s)]
            elif cart_op == "remove":
                cmds.append(_cmd("srem", k_cart, item))
            if etype == "purchase":
                k_buy = self._k_state(cid, "buy")
                cmds += [
                    _cmd("hset", k_buy, item, repr(ev.ts)),
                    _cmd("expire", k_buy, cfg.purchased_ttl_s),
                ]
            fields = {"c": cid, "i": item, "t": etype, "ts": repr(ev.ts)}
            for name, value in (
                ("q", ev.quantity),
                ("p", ev.price),
                ("ch", ev.channel),
                ("s", ev.session_id),
                ("v", ev.value),
            ):
                if value is not None:
                    fields[name] = repr(value) if isinstance(value, float) else str(value)
            cmds.append(
                _cmd("xadd", self.k_stream, fields, maxlen=cfg.stream_maxlen, approximate=True)
            )
        return cmds

    def _plan_email_sends(self, sends: Mapping[str, Sequence[str]], ts: float) -> list[Command]:
        cfg = self.config
        if not math.isfinite(ts):
            raise ValueError("ts must be a finite epoch timestamp")
        cmds: list[Command] = []
        for customer_id, item_ids in sends.items():
            key = self._k_state(check_id(customer_id, "customer_id"), "mail")
            members = {f"{check_id(i, 'item_id')}{SEP}{ts!r}": ts for i in item_ids}
            if members:
                cmds += [
                    _cmd("zadd", key, members),
                    _cmd("zremrangebyscore", key, "-inf", f"({ts - cfg.email_window_s!r}"),
                    _cmd("zremrangebyrank", key, 0, -cfg.email_cap - 1),
                    _cmd("expire", key, cfg.email_window_s),
                ]
        return cmds

    def _plan_customers(self, version: str, customer_ids: Sequence[str]) -> list[Command]:
        return [c for cid in customer_ids for c in self._plan_customer(version, cid)]

    def _decode_customers(self, version: str, res: Sequence[Any]) -> list[CustomerView]:
        n = len(res) // _CUSTOMER_CMDS
        return [
            self._decode_customer(version, res[i * _CUSTOMER_CMDS : (i + 1) * _CUSTOMER_CMDS])
            for i in range(n)
        ]

    def _plan_similar(self, version: str, items: Sequence[int]) -> list[Command]:
        return [_cmd("get", self.k_similar(version, int(i))) for i in items]

    def _decode_item_table(self, version: str, raw: dict[bytes, bytes]) -> ItemTable:
        if not raw:
            raise KeyError(f"version {version} has no item table")
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

    def list_name(self, kind: str, category: int | None = None) -> str:
        """Field name of a popular/trending list (global, or for a category code)."""
        if kind not in ("popular", "trending"):
            raise ValueError("kind must be 'popular' or 'trending'")
        return kind if category is None else f"{kind}:{int(category)}"

    @staticmethod
    def _decode_lists(raw: dict[bytes, bytes]) -> dict[str, Candidates]:
        return {_s(k): decode_ranked(v) for k, v in raw.items()}


def _apply(pipe: Any, cmds: Sequence[Command]) -> None:
    for name, args, kwargs in cmds:
        getattr(pipe, name)(*args, **kwargs)


class Store(_StoreBase):
    """Synchronous store: publishing, rollback, exports, and the same reads as the API.

    Build it with ``Store(connect(url), prefix="recsys")``.
    """

    def __init__(
        self, client: redis.Redis, prefix: str = "recsys", config: StoreConfig | None = None
    ) -> None:
        super().__init__(prefix, config)
        self.client: Any = client  # redis-py's response types are unions; we decode bytes
        self._switch = client.register_script(_SWITCH)
        self._rollback = client.register_script(_ROLLBACK)
        self._renew_script = client.register_script(_RENEW)
        self._release_script = client.register_script(_RELEASE)
        self._leases: dict[str, str] = {}  # version -> our token, while we write it

    def _run(self, cmds: Sequence[Command]) -> list[Any]:
        pipe = self.client.pipeline(transaction=False)
        _apply(pipe, cmds)
        return pipe.execute()

    # ---- reads -------------------------------------------------------------------------------
    def active_version(self) -> str | None:
        """The active version, or None when nothing was published yet."""
        raw = self.client.get(self.k_active)
        return _s(raw) if raw is not None else None

    def previous_version(self) -> str | None:
        raw = self.client.get(self.k_previous)
        return _s(raw) if raw is not None else None

    def customer_view(self, version: str, customer_id: str) -> CustomerView:
        """Candidates of ``customer_id`` in ``version`` + their online state, one round trip."""
        return self._decode_customer(version, self._run(self._plan_customer(version, customer_id)))

    def customer_views(self, version: str, customer_ids: Sequence[str]) -> list[CustomerView]:
        """:meth:`customer_view` for many customers (e.g. an email batch), one round trip."""
        res = self._run(self._plan_customers(version, customer_ids))
        return self._decode_customers(version, res)

    def item_table(self, version: str) -> ItemTable:
        """The item table of ``version`` (callers cache it per version). KeyError if missing."""
        return self._decode_item_table(version, self.client.hgetall(self.k_items(version)))

    def similar(self, version: str, items: Sequence[int]) -> list[Candidates]:
        """Similar items of each item index (empty for unknown items), one round trip."""
        return [decode_ranked(p) for p in self._run(self._plan_similar(version, items))]

    def ranked_list(self, version: str, kind: str, category: int | None = None) -> Candidates:
        """The popular or trending list, global or for one category code."""
        return decode_ranked(
            self.client.hget(self.k_lists(version), self.list_name(kind, category))
        )

    def all_lists(self, version: str) -> dict[str, Candidates]:
        """Every popular/trending list of ``version`` by name (for a local degraded copy)."""
        return self._decode_lists(self.client.hgetall(self.k_lists(version)))

    # ---- online state ------------------------------------------------------------------------
    def record_events(self, events: Sequence[OnlineEvent]) -> int:
        """Apply events to online state and append them to the stream; returns the count."""
        self._run(self._plan_events(events))
        return len(events)

    def record_email_sends(self, sends: Mapping[str, Sequence[str]], ts: float) -> None:
        """Remember that items were emailed at ``ts`` ({customer id: item ids}), one round trip."""
        cmds = self._plan_email_sends(sends, ts)
        if cmds:
            self._run(cmds)

    # ---- versions ----------------------------------------------------------------------------
    def versions(self) -> dict[str, VersionInfo]:
        raw = self.client.hgetall(self.k_versions)
        return {_s(k): VersionInfo.from_json(v) for k, v in raw.items()}

    def version_info(self, version: str) -> VersionInfo | None:
        raw = self.client.hget(self.k_versions, version)
        return VersionInfo.from_json(raw) if raw is not None else None

    def _put_info(self, info: VersionInfo) -> None:
        self.client.hset(self.k_versions, info.version, info.to_json())

    def _unlink_namespace(self, version: str, ttl: int | None = None) -> int:
        """Delete (ttl None/0) or expire every key of a version's namespace; returns the count."""
        n = 0
        batch: list[bytes] = []
        pattern = self._ns(version) + "*"
        pipe = self.client.pipeline(transaction=False)
        for key in self.client.scan_iter(match=pattern, count=5000):
            batch.append(key)
            if len(batch) >= 5000:
                n += self._drop(pipe, batch, ttl)
                batch = []
        if batch:
            n += self._drop(pipe, batch, ttl)
        return n

    @staticmethod
    def _drop(pipe: Any, keys: list[bytes], ttl: int | None) -> int:
        if ttl:
            for key in keys:
                pipe.expire(key, ttl)
        else:
            pipe.unlink(*keys)
        pipe.execute()
        return len(keys)

    # ---- publishing lease: one writer per version --------------------------------------------
    def _claim(self, version: str) -> None:
        """Hold ``version`` for this publisher (renewed by every write, released by
        :meth:`finish_version` or :meth:`release`); PublishInProgress if another holds it."""
        if version in self._leases:
            self._renew(version)
            return
        token = uuid.uuid4().hex
        if not self.client.set(self.k_lease(version), token, nx=True, px=self._lease_ms):
            left = max(0, int(self.client.pttl(self.k_lease(version)))) / 1000
            raise PublishInProgress(
                f"version {version} is being published by another process; wait for it to "
                f"finish (a publisher that died lets go within {left:.0f} s)"
            )
        self._leases[version] = token

    @property
    def _lease_ms(self) -> int:
        return max(1, int(self.config.publish_lease_s * 1000))

    def _renew(self, version: str) -> None:
        token = self._leases.get(version)
        if token is None:  # not publishing through this store (e.g. a hand-made version)
            return
        if not self._renew_script(keys=[self.k_lease(version)], args=[token, self._lease_ms]):
            del self._leases[version]
            raise PublishInProgress(
                f"lost the publishing lease of version {version} (no write for "
                f"{self.config.publish_lease_s:.0f} s, and another publisher may have taken it)"
            )

    def release(self, version: str) -> None:
        """Let go of ``version`` (after a failed publish, so a re-run need not wait)."""
        token = self._leases.pop(version, None)
        if token is not None:
            self._release_script(keys=[self.k_lease(version)], args=[token])

    def begin_version(self, version: str, meta: dict[str, Any] | None = None) -> VersionInfo:
        """Start writing ``version``: refuses the active one and one another publisher is
        writing (:class:`PublishInProgress`); clears leftovers of a crash."""
        check_version(version)
        if version == self.active_version():
            raise ValueError(f"version {version} is active; publish under another version")
        self._claim(version)
        self._unlink_namespace(version)
        info = VersionInfo(version=version, created_at=time.time(), meta=dict(meta or {}))
        self._put_info(info)
        return info

    def write_candidates(
        self,
        version: str,
        customer_ids: Sequence[str],
        items: np.ndarray,
        scores: np.ndarray,
        *,
        width: int,
    ) -> int:
        """Write the candidates of a chunk of customers (row i -> customer_ids[i]).

        Returns the payload bytes written. Rows with no valid item are skipped.
        """
        if len(customer_ids) != items.shape[0]:
            raise ValueError("one row of items per customer id")
        self._renew(version)
        values = encode_ranked_rows(items, scores, width)
        keys = [
            self.k_candidates(version, check_id(str(c), "customer_id")).encode()
            for c in customer_ids
        ]
        pairs = [(k, v) for k, v in zip(keys, values, strict=True) if len(v) > 1]
        self._raw_set(pairs)
        self.client.hincrby(self.k_meta(version), "customers", len(pairs))
        return sum(len(v) for _, v in pairs)

    def write_similar(
        self,
        version: str,
        item_rows: np.ndarray,
        items: np.ndarray,
        scores: np.ndarray,
        *,
        width: int,
    ) -> int:
        """Write the similar items of item indices ``item_rows``; returns the payload bytes."""
        self._renew(version)
        values = encode_ranked_rows(items, scores, width)
        pairs = [
            (self.k_similar(version, int(i)).encode(), v)
            for i, v in zip(np.asarray(item_rows).tolist(), values, strict=True)
            if len(v) > 1
        ]
        self._raw_set(pairs)
        self.client.hincrby(self.k_meta(version), "similar", len(pairs))
        return sum(len(v) for _, v in pairs)

    def write_lists(self, version: str, lists: dict[str, Candidates], *, width: int) -> None:
        """Write popular/trending lists; names from :meth:`list_name`."""
        self._renew(version)
        mapping = {name: encode_ranked(c.items, c.scores, width) for name, c in lists.items()}
        if mapping:
            self.client.hset(self.k_lists(version), mapping=mapping)  # type: ignore[arg-type]
        self.client.hset(self.k_meta(version), "lists", len(mapping))

    def write_item_table(self, table: ItemTable) -> None:
        """Write the item table of ``table.version``."""
        self._renew(table.version)
        ids = [check_id(str(x), "item_id") for x in table.item_ids.tolist()]
        for name in table.categories:
            if SEP in name:
                raise ValueError(f"category {name!r} contains a control character")
        mapping: dict[str, bytes] = {
            "ids": SEP.join(ids).encode(),
            "categories": SEP.join(table.categories).encode(),
            "category": np.asarray(table.category, dtype="<i4").tobytes(),
            "price": np.asarray(table.price, dtype="<f4").tobytes(),
            "in_stock": np.asarray(table.in_stock, dtype=np.uint8).tobytes(),
            "created_at": np.asarray(table.created_at, dtype="<f8").tobytes(),
            "repeatable": np.asarray(table.repeatable, dtype=np.uint8).tobytes(),
        }
        key = self.k_items(table.version)
        self.client.delete(key)
        self.client.hset(key, mapping=mapping)  # type: ignore[arg-type]
        self.client.hset(self.k_meta(table.version), "items", table.n_items)

    def _raw_set(self, pairs: Sequence[tuple[bytes, bytes]]) -> None:
        """Pipelined SETs as hand-packed RESP (3x faster than per-command packing)."""
        if not pairs:
            return
        if not isinstance(self.client, redis.Redis):  # e.g. a cluster client: generic path
            for start in range(0, len(pairs), self.config.write_batch):
                pipe = self.client.pipeline(transaction=False)
                for key, value in pairs[start : start + self.config.write_batch]:
                    pipe.set(key, value)
                pipe.execute()
            return
        pool = self.client.connection_pool
        try:
            conn = pool.get_connection()
        except TypeError:  # redis-py < 5.3 wants a command name
            conn = pool.get_connection("SET")
        try:
            batch = self.config.write_batch
            for start in range(0, len(pairs), batch):
                chunk = pairs[start : start + batch]
                buf = b"".join(
                    b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(k), k, len(v), v)
                    for k, v in chunk
                )
                conn.send_packed_command([buf])
                for _ in chunk:
                    reply = conn.read_response()
                    if reply not in (b"OK", "OK", True):
                        raise redis.ResponseError(f"SET failed while publishing: {reply!r}")
        except BaseException:
            conn.disconnect()  # unread replies would corrupt the next user of the connection
            raise
        finally:
            pool.release(conn)

    def written_counts(self, version: str) -> dict[str, int]:
        raw = self.client.hgetall(self.k_meta(version))
        return {_s(k): int(v) for k, v in raw.items()}

    def finish_version(
        self,
        version: str,
        expected: dict[str, int],
        sample_customers: Sequence[str] = (),
    ) -> VersionInfo:
        """Verify counters (and that sampled customers' keys exist), then mark complete and
        let go of the publishing lease."""
        self._renew(version)
        info = self.version_info(version)
        if info is None:
            raise KeyError(f"version {version} was never begun")
        counts = self.written_counts(version)
        wrong = {k: (counts.get(k, 0), v) for k, v in expected.items() if counts.get(k, 0) != v}
        if wrong:
            raise RuntimeError(
                f"version {version} failed verification (written, expected): {wrong}"
            )
        if sample_customers:
            keys = [self.k_candidates(version, c) for c in sample_customers]
            pipe = self.client.pipeline(transaction=False)
            for key in keys:
                pipe.exists(key)
            missing = [c for c, ok in zip(sample_customers, pipe.execute(), strict=True) if not ok]
            if missing:
                raise RuntimeError(f"version {version}: candidates missing for {missing[:5]}")
        if not self.client.exists(self.k_items(version)):
            raise RuntimeError(f"version {version} has no item table")
        info.status, info.completed_at, info.counts = "complete", time.time(), counts
        self._put_info(info)
        self.release(version)
        return info

    def activate(self, version: str) -> str | None:
        """Atomically make a complete ``version`` active; returns the one it replaced.

        The replaced version becomes ``previous`` (kept for rollback); versions older than
        that get a TTL of ``config.retired_ttl_s``.
        """
        old = self._switch(keys=[self.k_active, self.k_previous, self.k_versions], args=[version])
        self.retire_old()
        return _s(old) or None

    def rollback(self) -> str:
        """Atomically swap active and previous; returns the version now active."""
        return _s(self._rollback(keys=[self.k_active, self.k_previous, self.k_versions]))

    def retire_old(self) -> list[str]:
        """Expire versions that are neither active nor previous (incl. crashed writes)."""
        keep = {self.active_version(), self.previous_version()}
        retired = []
        now = time.time()
        ttl = self.config.retired_ttl_s
        for version, info in self.versions().items():
            if version in keep:
                continue
            if info.status == "retired":
                if info.expires_at is not None and info.expires_at < now:
                    self.client.hdel(self.k_versions, version)
                continue
            self._unlink_namespace(version, ttl=ttl)
            info.status, info.expires_at = "retired", now + ttl if ttl else now
            self._put_info(info)
            retired.append(version)
        return retired

    # ---- measurements ------------------------------------------------------------------------
    def bytes_per_customer(self, version: str, customer_ids: Sequence[str]) -> float:
        """Mean ``MEMORY USAGE`` (key + value + overhead) of sampled customers' candidates."""
        pipe = self.client.pipeline(transaction=False)
        for c in customer_ids:
            pipe.memory_usage(self.k_candidates(version, c), samples=0)
        sizes = [s for s in pipe.execute() if s is not None]
        return float(np.mean(sizes)) if sizes else float("nan")

    # ---- events stream -----------------------------------------------------------------------
    def read_stream(
        self, after: str | None = None, count: int = 10_000
    ) -> list[tuple[str, dict[str, str]]]:
        """Up to ``count`` stream entries after id ``after`` (default: the last exported)."""
        start = after if after is not None else self.exported_id()
        entries = self.client.xrange(self.k_stream, min=f"({start}", count=count)
        return [(_s(i), {_s(k): _s(v) for k, v in f.items()}) for i, f in entries]

    def exported_id(self) -> str:
        raw = self.client.get(self.k_exported)
        return _s(raw) if raw is not None else "0-0"

    def mark_exported(self, stream_id: str) -> None:
        self.client.set(self.k_exported, stream_id)

    def stream_trimmed_since_export(self) -> bool:
        """True when the stream was trimmed past the last exported entry (events lost)."""
        last = self.exported_id()
        if last == "0-0":
            return False
        return not self.client.xrange(self.k_stream, last, last) and bool(
            self.client.xlen(self.k_stream)
        )


class AsyncStore(_StoreBase):
    """The API's store (redis.asyncio): the same reads and online-state writes as :class:`Store`."""

    def __init__(
        self,
        client: redis.asyncio.Redis,
        prefix: str = "recsys",
        config: StoreConfig | None = None,
    ) -> None:
        super().__init__(prefix, config)
        self.client: Any = client  # redis-py's response types are unions; we decode bytes
        # a transport with raw pipelined reads (serving.api.fastredis) serves the hot path
        self._read_raw: Any = getattr(client, "read_raw", None)

    async def _run(self, cmds: Sequence[Command]) -> list[Any]:
        pipe = self.client.pipeline(transaction=False)
        _apply(pipe, cmds)
        return await pipe.execute()

    async def active_version(self) -> str | None:
        raw = await self.client.get(self.k_active)
        return _s(raw) if raw is not None else None

    async def customer_view(self, version: str, customer_id: str) -> CustomerView:
        """Candidates of ``customer_id`` in ``version`` + their online state, one round trip."""
        res = await self._run(self._plan_customer(version, customer_id))
        return self._decode_customer(version, res)

    async def customer_view_active(self, customer_id: str, version_hint: str) -> CustomerView:
        """Like :meth:`customer_view` for the ACTIVE version, reading the pointer in the same
        round trip: ``version_hint`` is the caller's cached active version; when the pointer
        moved, the candidates are re-read for the new version (a second round trip).
        The returned ``view.version`` is the version that answered (KeyError if none)."""
        if self.raw_reads:
            return (await self.customer_raw_active(customer_id, version_hint)).view()
        cmds = [_cmd("get", self.k_active), *self._plan_customer(version_hint, customer_id)]
        res = await self._run(cmds)
        active = _s(res[0]) if res[0] is not None else None
        if active is None:
            raise KeyError("no active version")
        if active == version_hint:
            return self._decode_customer(active, res[1:])
        return await self.customer_view(active, customer_id)

    @property
    def raw_reads(self) -> bool:
        """Whether the transport returns raw replies (:meth:`customer_raw_active`)."""
        return self._read_raw is not None

    async def customer_raw_active(
        self, customer_id: str, version_hint: str, mail: bool = True
    ) -> RawCustomer:
        """:meth:`customer_view_active` undecoded (needs :attr:`raw_reads`): one packed
        write for the pointer and the customer's keys, a second round trip only when the
        pointer moved away from ``version_hint``. KeyError when no version is active.
        Without ``mail`` the email sends are not read (``mailed`` is empty)."""
        cmds = self._raw_customer(version_hint, customer_id, mail)
        raw = _checked(await self._read_raw([("GET", self.k_active), *cmds]))
        if raw[0] is None:
            raise KeyError("no active version")
        active = _str(raw[0])
        if active != version_hint:
            cmds = self._raw_customer(active, customer_id, mail)
            raw = [raw[0], *_checked(await self._read_raw(cmds))]
        return RawCustomer(active, raw[1], raw[2], raw[3], raw[4], raw[5] if mail else [])

    async def customer_views(self, version: str, customer_ids: Sequence[str]) -> list[CustomerView]:
        """:meth:`customer_view` for many customers (e.g. an email batch), one round trip."""
        res = await self._run(self._plan_customers(version, customer_ids))
        return self._decode_customers(version, res)

    async def item_table(self, version: str) -> ItemTable:
        return self._decode_item_table(version, await self.client.hgetall(self.k_items(version)))

    async def similar(self, version: str, items: Sequence[int]) -> list[Candidates]:
        return [decode_ranked(p) for p in await self._run(self._plan_similar(version, items))]

    async def ranked_list(self, version: str, kind: str, category: int | None = None) -> Candidates:
        raw = await self.client.hget(self.k_lists(version), self.list_name(kind, category))
        return decode_ranked(raw)

    async def all_lists(self, version: str) -> dict[str, Candidates]:
        return self._decode_lists(await self.client.hgetall(self.k_lists(version)))

    async def record_events(self, events: Sequence[OnlineEvent]) -> int:
        await self._run(self._plan_events(events))
        return len(events)

    async def record_email_sends(self, sends: Mapping[str, Sequence[str]], ts: float) -> None:
        """Remember that items were emailed at ``ts`` ({customer id: item ids}), one round trip."""
        cmds = self._plan_email_sends(sends, ts)
        if cmds:
            await self._run(cmds)
