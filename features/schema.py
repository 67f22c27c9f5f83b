"""Canonical schemas shared by every source, the validator and the matrix builder.

A source (generic CSV/Parquet with a column mapping, or a built-in layout) produces a frame
with the canonical event columns below, all as *strings* exactly as the shop gave them
(``RAW_EVENT_COLUMNS``); validation parses them into ``EVENT_SCHEMA`` and quarantines the rows
it cannot parse, keeping their original content.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import polars as pl

# --- events -------------------------------------------------------------------------------

DEFAULT_EVENT_TYPES: tuple[str, ...] = (
    "view",
    "add_to_cart",
    "remove_from_cart",
    "purchase",
    "email_open",
    "email_click",
)
"""Event types known out of the box; a :class:`EventTypes` config extends the set."""

MOVIELENS_EVENT_TYPES: tuple[str, ...] = ("rating_pos", "rating_neg")
"""MovieLens ratings become ``rating_pos`` (rating >= threshold) or ``rating_neg``."""

CHANNELS: tuple[str, ...] = ("web", "app", "email", "store")

EVENT_SCHEMA: dict[str, pl.DataType] = {
    "customer_id": pl.String(),
    "item_id": pl.String(),
    "event_type": pl.String(),
    "timestamp": pl.Datetime("us", "UTC"),
    "quantity": pl.Float64(),
    "price": pl.Float64(),
    "channel": pl.String(),
    "session_id": pl.String(),
    "value": pl.Float64(),
}
"""Validated events. ``value`` carries an explicit rating where a source has one (else null)."""

REQUIRED_EVENT_COLUMNS: tuple[str, ...] = ("customer_id", "item_id", "event_type", "timestamp")
RAW_EVENT_COLUMNS: tuple[str, ...] = tuple(EVENT_SCHEMA)


@dataclass(frozen=True)
class EventTypes:
    """The event types a shop uses; anything else is quarantined as ``unknown_event_type``."""

    names: tuple[str, ...] = DEFAULT_EVENT_TYPES
    extra: tuple[str, ...] = field(default_factory=tuple)

    @property
    def all(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.names + self.extra))


# --- catalog and customers -----------------------------------------------------------------

CATALOG_SCHEMA: dict[str, pl.DataType] = {
    "item_id": pl.String(),
    "title": pl.String(),
    "category": pl.String(),  # category path, levels joined by " > "
    "price": pl.Float64(),
    "in_stock": pl.Boolean(),
    "created_at": pl.Datetime("us", "UTC"),
}
"""Catalog columns; any further column is a free attribute (kept as a string)."""

CATEGORY_SEPARATOR = " > "

CUSTOMER_SCHEMA: dict[str, pl.DataType] = {"customer_id": pl.String()}
"""Customers: the id plus free attribute columns (kept as strings)."""


# --- quarantine reasons --------------------------------------------------------------------


class Reason(StrEnum):
    """Why a row was quarantined. Stored with the row's original content."""

    MISSING_CUSTOMER_ID = "missing_customer_id"
    MISSING_ITEM_ID = "missing_item_id"
    MISSING_EVENT_TYPE = "missing_event_type"
    UNKNOWN_EVENT_TYPE = "unknown_event_type"
    MISSING_TIMESTAMP = "missing_timestamp"
    BAD_TIMESTAMP = "unparseable_timestamp"
    FUTURE_TIMESTAMP = "future_timestamp"
    OLD_TIMESTAMP = "timestamp_too_old"
    BAD_QUANTITY = "unparseable_quantity"
    NON_POSITIVE_QUANTITY = "non_positive_quantity"
    BAD_PRICE = "unparseable_price"
    NEGATIVE_PRICE = "negative_price"
    BAD_VALUE = "unparseable_value"
    UNKNOWN_ITEM = "unknown_item"
    INVALID_ID = "invalid_id"
    BOT = "bot_customer"
    RETURN = "return"
    CANCELLATION = "cancellation"
    GUEST = "guest_without_id"
