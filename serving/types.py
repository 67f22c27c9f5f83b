"""In-memory shapes passed between the store, re-ranking and the API.

The seam between ``serving.store`` (which reads and writes them from Redis) and the pure
functions in ``serving.rules`` / ``serving.rerank`` (which never do I/O). Item indices are
internal to one published model version; ``ItemTable`` translates them to external ids.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np


@dataclass(frozen=True, slots=True)
class ItemTable:
    """Everything rules need about the items of one published version, column-wise.

    Loaded once per version by the API and cached (a catalog of 1M items is a few tens of MB).
    """

    version: str
    item_ids: np.ndarray  # (n_items,) object: index -> external item id
    category: np.ndarray  # (n_items,) int32 code into ``categories``, -1 when unknown
    categories: tuple[str, ...]  # code -> category path ("Home > Kitchen > Mugs")
    price: np.ndarray  # (n_items,) float32, NaN when unknown
    in_stock: np.ndarray  # (n_items,) bool
    created_at: np.ndarray  # (n_items,) float64 epoch seconds, NaN when unknown
    repeatable: np.ndarray  # (n_items,) bool: consumables that may be bought again
    index: dict[str, int] = field(default_factory=dict)  # external id -> index

    def __post_init__(self) -> None:
        if not self.index:
            self.index.update({str(x): i for i, x in enumerate(self.item_ids.tolist())})

    @property
    def n_items(self) -> int:
        return int(self.item_ids.shape[0])


@dataclass(frozen=True, slots=True)
class Candidates:
    """A ranked list of item indices with model scores (higher is better)."""

    items: np.ndarray  # int32
    scores: np.ndarray  # float32, same length

    @staticmethod
    def empty() -> Candidates:
        return Candidates(np.empty(0, np.int32), np.empty(0, np.float32))

    def __len__(self) -> int:
        return int(self.items.shape[0])


@dataclass(frozen=True, slots=True)
class Activity:
    """One recent online event of a customer (external item id, newest first in lists)."""

    item_id: str
    event_type: str
    ts: float  # epoch seconds


@dataclass(frozen=True, slots=True)
class OnlineState:
    """A customer's real-time state, the same for every channel."""

    recent: tuple[Activity, ...] = ()  # capped, newest first
    cart: tuple[str, ...] = ()
    purchased: dict[str, float] = field(default_factory=dict)  # item id -> last purchase ts
    email_sent: dict[str, tuple[float, ...]] = field(default_factory=dict)  # item id -> send ts


class RankedItem(NamedTuple):
    """One item of a response, with the reason a person can read (a named tuple: built
    ten at a time on every request)."""

    item_id: str
    score: float
    reason: str  # "for you", "because you viewed X", "trending in Y", "popular"
    # for_you | similar_to_viewed | similar_to_cart | similar_to_item | trending_in_category |
    # trending | popular
    reason_code: str


@dataclass(frozen=True, slots=True)
class CustomerView:
    """What one pipelined read returns for a customer: candidates of ``version`` + state."""

    version: str  # the published version the candidates come from
    candidates: Candidates  # empty when the customer has none in this version
    state: OnlineState


@dataclass(frozen=True, slots=True)
class OnlineEvent:
    """One real-time event to record (``features.schema.DEFAULT_EVENT_TYPES``; ids validated)."""

    customer_id: str
    item_id: str
    event_type: str
    ts: float  # epoch seconds
    quantity: float | None = None
    price: float | None = None
    channel: str | None = None
    session_id: str | None = None
    value: float | None = None
