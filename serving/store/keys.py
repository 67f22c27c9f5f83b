"""The key layout of the store: the ONLY place that builds Redis key names.

``p`` = prefix, ``V`` = a published version, ``id`` = an external customer id::

    {p}:active  {p}:previous           version pointers (one slot: switched by a Lua script)
    {p}:versions                       hash V -> JSON VersionInfo (status, counts, times)
    {p}:events  {p}:events:exported    Redis Stream of online events + last exported id
    {p}:publishing:V                   lease of the process publishing V (expires)
    p:v:V:{c:id}                       candidates of a customer (binary, ``codec``)
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
harmless). The version pointers, the registry, the leases and the stream share the slot of
the tag ``{p}``, so the Lua scripts touch keys of one slot.
"""

from __future__ import annotations

import re

_VERSION_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
LIST_KINDS = ("popular", "trending")
_RECENT, _CART, _BOUGHT, _MAILED = ":r", ":cart", ":buy", ":mail"  # per-customer keys


def check_version(version: str) -> str:
    """``version`` when it is a valid version name (letters, digits, ``._-``), else ValueError."""
    if not isinstance(version, str) or not _VERSION_RE.match(version):
        raise ValueError(f"version {version!r} must match {_VERSION_RE.pattern}")
    return version


def list_name(kind: str, category: int | None = None) -> str:
    """Field name of a popular/trending list in :meth:`Keys.lists` (global, or for a
    category code)."""
    if kind not in LIST_KINDS:
        raise ValueError("kind must be 'popular' or 'trending'")
    return kind if category is None else f"{kind}:{int(category)}"


class Keys:
    """Key names under one prefix (see the module docstring for the layout)."""

    __slots__ = ("active", "exported", "prefix", "previous", "stream", "versions")

    def __init__(self, prefix: str) -> None:
        if not prefix or any(c in prefix for c in "{}*?[] "):
            raise ValueError(f"prefix {prefix!r} must be non-empty without braces or globs")
        self.prefix = prefix
        tag = f"{{{prefix}}}"  # version pointers, registry, leases and stream share one slot
        self.active = f"{tag}:active"
        self.previous = f"{tag}:previous"
        self.versions = f"{tag}:versions"
        self.stream = f"{tag}:events"
        self.exported = f"{tag}:events:exported"

    # ---- a version's namespace ---------------------------------------------------------------
    def namespace(self, version: str) -> str:
        """The prefix of every key of ``version`` (``namespace + "*"`` matches them all)."""
        return f"{self.prefix}:v:{version}:"

    def candidates(self, version: str, customer_id: str) -> str:
        return f"{self.prefix}:v:{version}:{{c:{customer_id}}}"

    def meta(self, version: str) -> str:
        return self.namespace(version) + "meta"

    def items(self, version: str) -> str:
        return self.namespace(version) + "items"

    def lists(self, version: str) -> str:
        return self.namespace(version) + "lists"

    def similar(self, version: str, item: int) -> str:
        return f"{self.prefix}:v:{version}:s:{item}"

    def lease(self, version: str) -> str:
        return f"{{{self.prefix}}}:publishing:{version}"

    # ---- a customer's online state -------------------------------------------------------------
    def _state(self, customer_id: str) -> str:
        return f"{self.prefix}:{{c:{customer_id}}}"

    def recent(self, customer_id: str) -> str:
        return self._state(customer_id) + _RECENT

    def cart(self, customer_id: str) -> str:
        return self._state(customer_id) + _CART

    def bought(self, customer_id: str) -> str:
        return self._state(customer_id) + _BOUGHT

    def mailed(self, customer_id: str) -> str:
        return self._state(customer_id) + _MAILED

    def customer(self, version: str, customer_id: str) -> tuple[str, str, str, str, str]:
        """A customer's keys in the order of one read: candidates of ``version``, recent
        activity, cart, purchases, email sends (the hot read's keys: built with two
        f-strings, no further calls)."""
        state = f"{self.prefix}:{{c:{customer_id}}}"  # = self._state(customer_id)
        return (
            f"{self.prefix}:v:{version}:{{c:{customer_id}}}",  # = self.candidates(...)
            state + _RECENT,
            state + _CART,
            state + _BOUGHT,
            state + _MAILED,
        )
