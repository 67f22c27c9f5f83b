"""What every part of the store shares: its configuration, its keys and command plans.

A command plan is a list of :data:`Command`, each a Redis command as its words
(``("LRANGE", key, 0, 49)``): the sync store runs it on a redis-py pipeline, the async store
on a redis.asyncio one or on the raw transport of ``serving.api.fastredis``; the decoders in
``codec`` read any of their replies. Only the I/O differs between the two stores.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from serving.store.keys import Keys, list_name

Command = tuple[Any, ...]


def apply(pipe: Any, cmds: Sequence[Command]) -> None:
    """Queue ``cmds`` on a redis-py (sync or asyncio) pipeline."""
    for words in cmds:
        pipe.execute_command(*words)


def checked(replies: list[Any]) -> list[Any]:
    """``replies`` after raising the first error reply among them."""
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return replies


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


class StoreBase:
    """The client, key layout and configuration of a store (sync or async)."""

    client: Any  # redis-py's response types are unions; the codec decodes bytes

    def __init__(self, prefix: str = "recsys", config: StoreConfig | None = None) -> None:
        self.keys = Keys(prefix)
        self.prefix = prefix
        self.config = config or StoreConfig()

    @staticmethod
    def list_name(kind: str, category: int | None = None) -> str:
        """Field name of a popular/trending list (global, or for a category code)."""
        return list_name(kind, category)
