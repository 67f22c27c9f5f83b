"""Business rules: the service's (category codes, ids) and the reference's (bans, filters, MMR)."""

from __future__ import annotations

import numpy as np
import rerank_reference

from serving import rules
from serving.types import ItemTable, OnlineState

NOW = 1_700_000_000.0
DAY = 86_400.0

# item:      a       b        c       d        e       f
CATS = ("Home", "Home > Kitchen", "Home > Kitchen > Mugs", "Garden", "Food")
TABLE = ItemTable(
    version="v1",
    item_ids=np.array(["a", "b", "c", "d", "e", "f"], dtype=object),
    category=np.array([0, 1, 2, 3, 4, -1], dtype=np.int32),
    categories=CATS,
    price=np.array([5.0, 10.0, 20.0, np.nan, 3.0, 50.0], dtype=np.float32),
    in_stock=np.array([True, True, False, True, True, True]),
    created_at=np.array([NOW - 2 * DAY, NOW - 40 * DAY, np.nan, NOW, NOW - 100 * DAY, 0.0]),
    repeatable=np.array([False, False, False, False, True, False]),
)
ALL = np.arange(6, dtype=np.int32)


def ids(mask: np.ndarray) -> list[str]:
    return TABLE.item_ids[ALL[mask]].tolist()


def named(indices: np.ndarray) -> list[str]:
    return sorted(TABLE.item_ids[indices].tolist())


def test_indices_of_drops_unknown_ids() -> None:
    assert rules.indices_of(TABLE, ["c", "zzz", "a"]).tolist() == [2, 0]


def test_category_codes_match_path_prefix_case_insensitively() -> None:
    assert rules.category_codes(TABLE, ["home > kitchen"]).tolist() == [1, 2]
    assert rules.category_codes(TABLE, ["Home"]).tolist() == [0, 1, 2]
    assert rules.category_codes(TABLE, ["Hom"]).tolist() == []  # not a path prefix
    assert rules.category_codes(TABLE, ["", "  "]).tolist() == []


def test_purchased_except_repeatable_items_and_categories() -> None:
    state = OnlineState(purchased={"a": NOW, "e": NOW, "d": NOW, "unknown": NOW})
    assert named(rerank_reference.bought_items(TABLE, state)) == ["a", "d"]  # e is repeatable
    garden = rules.category_codes(TABLE, ["Garden"])
    assert named(rerank_reference.bought_items(TABLE, state, garden)) == ["a"]
    assert not rerank_reference.bought_items(TABLE, OnlineState()).size


def test_cart() -> None:
    assert named(rerank_reference.cart_items(TABLE, OnlineState(cart=("b", "f", "unknown")))) == ["b", "f"]


def test_category_include_and_exclude() -> None:
    assert ids(rerank_reference.category_mask(ALL, TABLE, include=["Home"])) == ["a", "b", "c"]
    keep = rerank_reference.category_mask(ALL, TABLE, include=["Home"], exclude=["Home > Kitchen > Mugs"])
    assert ids(keep) == ["a", "b"]
    assert ids(rerank_reference.category_mask(ALL, TABLE, exclude=["Home"])) == ["d", "e", "f"]
    assert rerank_reference.category_mask(ALL, TABLE).all()


def test_price_range_unknown_price_fails_a_bound() -> None:
    assert ids(rerank_reference.price_mask(ALL, TABLE, 5.0, 20.0)) == ["a", "b", "c"]
    assert ids(rerank_reference.price_mask(ALL, TABLE, high=5.0)) == ["a", "e"]
    assert rerank_reference.price_mask(ALL, TABLE).all()


def test_email_cap_last_emails_or_days() -> None:
    sent = {
        "a": (NOW - 1 * DAY,),  # within 7 days
        "b": (NOW - 20 * DAY,),  # the 2nd most recent email, older than 7 days
        "c": (NOW - 30 * DAY,),  # 3rd email
        "d": (NOW - 60 * DAY, NOW - 90 * DAY),  # 4th+ email: no longer capped
    }
    state = OnlineState(email_sent=sent)
    capped = rerank_reference.email_capped_items(TABLE, state, NOW, last_emails=3, days=7)
    assert named(capped) == ["a", "b", "c"]
    capped = rerank_reference.email_capped_items(TABLE, state, NOW, last_emails=1, days=7)
    assert named(capped) == ["a"]
    capped = rerank_reference.email_capped_items(TABLE, state, NOW, last_emails=0, days=25)
    assert named(capped) == ["a", "b"]
    assert not rerank_reference.email_capped_items(TABLE, OnlineState(), NOW).size


def test_mmr_trades_relevance_for_new_categories() -> None:
    cats = np.array([1, 1, 2], dtype=np.int32)
    scores = np.array([1.0, 0.9, 0.5])
    order = np.array([0, 1, 2])
    assert rerank_reference.mmr(order, scores, cats, n=3, lam=1.0).tolist() == [0, 1, 2]
    assert rerank_reference.mmr(order, scores, cats, n=3, lam=0.5).tolist() == [0, 2, 1]
    assert rerank_reference.mmr(order[:0], scores, cats, n=3).tolist() == []
