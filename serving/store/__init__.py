"""The Redis store, one module per job; the ONLY code that knows the key layout and encoding.

* ``keys``: the key layout (every key name is built there).
* ``codec``: ranked lists (and their compiled decoder), timestamps, activity entries, email
  sends, stream events, version info, the item table.
* ``registry``: versions, activation and rollback (Lua), the publishing lease.
* ``bulk``: the bulk publisher (a version's candidates, lists and item table; RESP writer).
* ``online``: online reads and event writes as command plans.
* ``stores``: :class:`Store` (redis-py, sync) and :class:`AsyncStore` (redis.asyncio) run
  the same plans and decoders; only the I/O differs.
"""

from features.ids import check_id
from serving.connection import connect, connect_async
from serving.store.base import StoreConfig
from serving.store.codec import (
    SEP,
    RawCustomer,
    VersionInfo,
    decode_ranked,
    decode_ranked_compiled,
    encode_activity,
    encode_ranked,
    encode_ranked_rows,
    encode_ts,
    item_width,
)
from serving.store.keys import Keys, check_version
from serving.store.registry import NoActiveVersion, PublishInProgress
from serving.store.stores import AsyncStore, Store

__all__ = [
    "SEP",
    "AsyncStore",
    "Keys",
    "NoActiveVersion",
    "PublishInProgress",
    "RawCustomer",
    "Store",
    "StoreConfig",
    "VersionInfo",
    "check_id",
    "check_version",
    "connect",
    "connect_async",
    "decode_ranked",
    "decode_ranked_compiled",
    "encode_activity",
    "encode_ranked",
    "encode_ranked_rows",
    "encode_ts",
    "item_width",
]
