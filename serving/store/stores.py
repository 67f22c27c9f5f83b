"""The two stores: :class:`Store` (redis-py, sync: publishing, rollback, exports, and the
same reads as the API) and :class:`AsyncStore` (redis.asyncio: the API). Both run the plans
of ``serving.store.online`` and decode with ``serving.store.codec``; only the I/O differs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import redis
import redis.asyncio

from serving.store.base import Command, StoreConfig, apply, checked
from serving.store.bulk import BulkWriter
from serving.store.codec import (
    RawCustomer,
    decode_customer,
    decode_event,
    decode_lists,
    decode_ranked,
    raw_customer,
    to_str,
)
from serving.store.online import CUSTOMER_CMDS, OnlinePlans, decode_items
from serving.store.registry import NoActiveVersion, pointer
from serving.types import Candidates, CustomerView, ItemTable, OnlineEvent


class Store(BulkWriter, OnlinePlans):
    """Synchronous store: publishing, rollback, exports, and the same reads as the API.

    Build it with ``Store(connect(url), prefix="recsys")``.
    """

    def __init__(
        self, client: redis.Redis, prefix: str = "recsys", config: StoreConfig | None = None
    ) -> None:
        super().__init__(prefix, config)
        self.client = client
        self._init_registry()

    def _run(self, cmds: Sequence[Command]) -> list[Any]:
        pipe = self.client.pipeline(transaction=False)
        apply(pipe, cmds)
        return pipe.execute()

    # ---- reads -------------------------------------------------------------------------------
    def customer_view(self, version: str, customer_id: str) -> CustomerView:
        """Candidates of ``customer_id`` in ``version`` + their online state, one round trip."""
        return decode_customer(version, self._run(self.customer_commands(version, customer_id)))

    def customer_views(self, version: str, customer_ids: Sequence[str]) -> list[CustomerView]:
        """:meth:`customer_view` for many customers (e.g. an email batch), one round trip."""
        return self.decode_customers(
            version, self._run(self.customers_commands(version, customer_ids))
        )

    def item_table(self, version: str) -> ItemTable:
        """The item table of ``version`` (callers cache it per version); NoActiveVersion if
        the version has none."""
        return decode_items(version, self.client.hgetall(self.keys.items(version)))

    def similar(self, version: str, items: Sequence[int]) -> list[Candidates]:
        """Similar items of each item index (empty for unknown items), one round trip."""
        return [decode_ranked(p) for p in self._run(self.similar_commands(version, items))]

    def ranked_list(self, version: str, kind: str, category: int | None = None) -> Candidates:
        """The popular or trending list, global or for one category code."""
        return decode_ranked(
            self.client.hget(self.keys.lists(version), self.list_name(kind, category))
        )

    def all_lists(self, version: str) -> dict[str, Candidates]:
        """Every popular/trending list of ``version`` by name (for a local degraded copy)."""
        return decode_lists(self.client.hgetall(self.keys.lists(version)))

    # ---- online state ------------------------------------------------------------------------
    def record_events(self, events: Sequence[OnlineEvent]) -> int:
        """Apply events to online state and append them to the stream; returns the count."""
        self._run(self.event_commands(events))
        return len(events)

    def record_email_sends(self, sends: Mapping[str, Sequence[str]], ts: float) -> None:
        """Remember that items were emailed at ``ts`` ({customer id: item ids}), one round trip."""
        cmds = self.email_commands(sends, ts)
        if cmds:
            self._run(cmds)

    # ---- events stream -----------------------------------------------------------------------
    def read_stream(
        self, after: str | None = None, count: int = 10_000
    ) -> list[tuple[str, OnlineEvent]]:
        """Up to ``count`` stream entries (id, event) after id ``after`` (default: the last
        exported)."""
        start = after if after is not None else self.exported_id()
        entries = self.client.xrange(self.keys.stream, min=f"({start}", count=count)
        return [(to_str(i), decode_event(f)) for i, f in entries]

    def exported_id(self) -> str:
        return pointer(self.client.get(self.keys.exported)) or "0-0"

    def mark_exported(self, stream_id: str) -> None:
        self.client.set(self.keys.exported, stream_id)

    def stream_trimmed_since_export(self) -> bool:
        """True when the stream was trimmed past the last exported entry (events lost)."""
        last = self.exported_id()
        if last == "0-0":
            return False
        stream = self.keys.stream
        return not self.client.xrange(stream, last, last) and bool(self.client.xlen(stream))


class AsyncStore(OnlinePlans):
    """The API's store (redis.asyncio): the same reads and online-state writes as :class:`Store`."""

    def __init__(
        self,
        client: redis.asyncio.Redis,
        prefix: str = "recsys",
        config: StoreConfig | None = None,
    ) -> None:
        super().__init__(prefix, config)
        self.client = client
        # a transport with raw pipelined reads (serving.api.fastredis) serves the reads
        self._read_raw: Any = getattr(client, "read_raw", None)

    async def _run(self, cmds: Sequence[Command]) -> list[Any]:
        pipe = self.client.pipeline(transaction=False)
        apply(pipe, cmds)
        return await pipe.execute()

    async def _read(self, cmds: list[Command]) -> list[Any]:
        """Replies of read-only ``cmds`` in one round trip (raw when the transport can)."""
        if self._read_raw is not None:
            return checked(await self._read_raw(cmds))
        return await self._run(cmds)

    @property
    def raw_reads(self) -> bool:
        """Whether the transport returns raw replies (:meth:`customer_raw_active`)."""
        return self._read_raw is not None

    async def active_version(self) -> str | None:
        return pointer(await self.client.get(self.keys.active))

    async def customer_view(self, version: str, customer_id: str) -> CustomerView:
        """Candidates of ``customer_id`` in ``version`` + their online state, one round trip."""
        return decode_customer(
            version, await self._read(self.customer_commands(version, customer_id))
        )

    async def customer_view_active(self, customer_id: str, version_hint: str) -> CustomerView:
        """Like :meth:`customer_view` for the ACTIVE version, reading the pointer in the same
        round trip: ``version_hint`` is the caller's cached active version; when the pointer
        moved, the candidates are re-read for the new version (a second round trip).
        The returned ``view.version`` is the version that answered; NoActiveVersion if none."""
        return (await self.customer_raw_active(customer_id, version_hint)).view()

    async def customer_raw_active(
        self, customer_id: str, version_hint: str, mail: bool = True
    ) -> RawCustomer:
        """:meth:`customer_view_active` undecoded (the replies as the transport gives them:
        raw with :attr:`raw_reads`). Without ``mail`` the email sends are not read."""
        read = self._read_raw or self._run
        cmds = self.customer_commands(version_hint, customer_id, mail)
        r = checked(await read([("GET", self.keys.active), *cmds]))
        if r[0] is None:
            raise NoActiveVersion("no active version")
        active = to_str(r[0])
        if active != version_hint:
            r = [r[0], *checked(await read(self.customer_commands(active, customer_id, mail)))]
        return raw_customer(active, r[1:])

    async def customers_raw(self, version: str, customer_ids: Sequence[str]) -> list[RawCustomer]:
        """:meth:`customer_raw_active` for many customers of ``version`` (an email batch),
        email sends included, one round trip."""
        replies = await self._read(self.customers_commands(version, customer_ids))
        n = CUSTOMER_CMDS
        return [raw_customer(version, replies[i : i + n]) for i in range(0, len(replies), n)]

    async def customer_views(self, version: str, customer_ids: Sequence[str]) -> list[CustomerView]:
        """:meth:`customer_view` for many customers (e.g. an email batch), one round trip."""
        replies = await self._read(self.customers_commands(version, customer_ids))
        return self.decode_customers(version, replies)

    async def item_table(self, version: str) -> ItemTable:
        return decode_items(version, await self.client.hgetall(self.keys.items(version)))

    async def similar(self, version: str, items: Sequence[int]) -> list[Candidates]:
        return [decode_ranked(p) for p in await self._read(self.similar_commands(version, items))]

    async def ranked_list(self, version: str, kind: str, category: int | None = None) -> Candidates:
        raw = await self.client.hget(self.keys.lists(version), self.list_name(kind, category))
        return decode_ranked(raw)

    async def all_lists(self, version: str) -> dict[str, Candidates]:
        return decode_lists(await self.client.hgetall(self.keys.lists(version)))

    async def record_events(self, events: Sequence[OnlineEvent]) -> int:
        await self._run(self.event_commands(events))
        return len(events)

    async def record_email_sends(self, sends: Mapping[str, Sequence[str]], ts: float) -> None:
        """Remember that items were emailed at ``ts`` ({customer id: item ids}), one round trip."""
        cmds = self.email_commands(sends, ts)
        if cmds:
            await self._run(cmds)
