"""Online reads and event writes as command plans: a customer's candidates and state,
similar and popular lists, the item table; activity, cart, purchases, email sends and the
events stream. Pure planning and decoding: ``serving.store.stores`` runs the plans (sync or
async), so both stores read and write exactly alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from features.ids import check_id
from serving.store.base import Command, StoreBase, StoreConfig
from serving.store.codec import (
    decode_customer,
    decode_item_table,
    encode_activity,
    encode_email_send,
    encode_event,
    encode_ts,
)
from serving.store.registry import NoActiveVersion
from serving.types import CustomerView, ItemTable, OnlineEvent

CART_EVENTS = {"add_to_cart": "add", "remove_from_cart": "remove", "purchase": "remove"}
CUSTOMER_CMDS = 5  # commands per customer in OnlinePlans.customer_commands (with mail)


def decode_items(version: str, raw: Mapping[bytes, bytes]) -> ItemTable:
    """The item table of ``version`` from its HGETALL reply; NoActiveVersion when it has
    none (the version was deleted or expired)."""
    if not raw:
        raise NoActiveVersion(f"version {version} has no item table")
    return decode_item_table(version, raw)


class OnlinePlans(StoreBase):
    """Command plans of online reads and writes (shared by the sync and async stores)."""

    def __init__(self, prefix: str = "recsys", config: StoreConfig | None = None) -> None:
        super().__init__(prefix, config)
        self._recent_stop = self.config.recent_cap - 1  # the last LRANGE index of activity

    def customer_commands(self, version: str, customer_id: str, mail: bool = True) -> list[Command]:
        """Reads of a customer's candidates in ``version`` and online state (one round trip;
        without ``mail`` the email sends are not read: only the email context uses them)."""
        k = self.keys.customer(version, customer_id)
        if mail:
            return [
                ("GET", k[0]),
                ("LRANGE", k[1], 0, self._recent_stop),
                ("SMEMBERS", k[2]),
                ("HGETALL", k[3]),
                ("ZRANGE", k[4], 0, -1, "WITHSCORES"),
            ]
        return [
            ("GET", k[0]),
            ("LRANGE", k[1], 0, self._recent_stop),
            ("SMEMBERS", k[2]),
            ("HGETALL", k[3]),
        ]

    def customers_commands(self, version: str, customer_ids: Sequence[str]) -> list[Command]:
        return [c for cid in customer_ids for c in self.customer_commands(version, cid)]

    @staticmethod
    def decode_customers(version: str, replies: Sequence[Any]) -> list[CustomerView]:
        n = CUSTOMER_CMDS
        return [decode_customer(version, replies[i : i + n]) for i in range(0, len(replies), n)]

    def similar_commands(self, version: str, items: Sequence[int]) -> list[Command]:
        return [("GET", self.keys.similar(version, int(i))) for i in items]

    def event_commands(self, events: Iterable[OnlineEvent]) -> list[Command]:
        """Apply events to online state and append them to the stream (ids checked first)."""
        cfg = self.config
        k = self.keys
        cmds: list[Command] = []
        for ev in events:
            cid = check_id(ev.customer_id, "customer_id")
            item = check_id(ev.item_id, "item_id")
            etype = check_id(ev.event_type, "event_type")
            ts = encode_ts(ev.ts)
            k_recent = k.recent(cid)
            cmds += [
                ("LPUSH", k_recent, encode_activity(ev.ts, etype, item)),
                ("LTRIM", k_recent, 0, cfg.recent_cap - 1),
                ("EXPIRE", k_recent, cfg.state_ttl_s),
            ]
            cart_op = CART_EVENTS.get(etype)
            if cart_op == "add":
                cmds += [("SADD", k.cart(cid), item), ("EXPIRE", k.cart(cid), cfg.state_ttl_s)]
            elif cart_op == "remove":
                cmds.append(("SREM", k.cart(cid), item))
            if etype == "purchase":
                k_buy = k.bought(cid)
                cmds += [("HSET", k_buy, item, ts), ("EXPIRE", k_buy, cfg.purchased_ttl_s)]
            checked = replace(ev, customer_id=cid, item_id=item, event_type=etype)
            fields = [w for kv in encode_event(checked).items() for w in kv]
            cmds.append(("XADD", k.stream, "MAXLEN", "~", cfg.stream_maxlen, "*", *fields))
        return cmds

    def email_commands(self, sends: Mapping[str, Sequence[str]], ts: float) -> list[Command]:
        """Remember that items were emailed at ``ts`` ({customer id: item ids}), capped."""
        cfg = self.config
        encode_ts(ts)  # a finite timestamp, or ValueError before anything is planned
        cmds: list[Command] = []
        for customer_id, item_ids in sends.items():
            key = self.keys.mailed(check_id(customer_id, "customer_id"))
            members = {encode_email_send(check_id(i, "item_id"), ts): ts for i in item_ids}
            if members:
                scored = [w for member in members for w in (repr(ts), member)]
                cmds += [
                    ("ZADD", key, *scored),
                    ("ZREMRANGEBYSCORE", key, "-inf", f"({ts - cfg.email_window_s!r}"),
                    ("ZREMRANGEBYRANK", key, 0, -cfg.email_cap - 1),
                    ("EXPIRE", key, cfg.email_window_s),
                ]
        return cmds
