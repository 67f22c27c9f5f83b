"""Re-ranking over a small hand-written catalog: pool, scores, rules, cold start, reasons."""

from __future__ import annotations

import numpy as np
import pytest
import rerank_reference
from core_adapter import core_as_rerank
from rerank_reference import Seed, fallback_category, session_seeds

from serving.rerank import Fallback, RerankConfig, RerankRequest
from serving.types import Activity, Candidates, ItemTable, OnlineState

NOW = 1_700_000_000.0
DAY = 86_400.0
N_ITEMS = 12
CATS = ("Home > Kitchen", "Home > Garden", "Books")
# items i0..i11: categories cycle Kitchen, Garden, Books; i11 out of stock; i10 is new
TABLE = ItemTable(
    version="v1",
    item_ids=np.array([f"i{k}" for k in range(N_ITEMS)], dtype=object),
    category=np.array([k % 3 for k in range(N_ITEMS)], dtype=np.int32),
    categories=CATS,
    price=np.arange(1, N_ITEMS + 1, dtype=np.float32) * 10,
    in_stock=np.array([k != 11 for k in range(N_ITEMS)]),
    created_at=np.array([NOW - DAY if k == 10 else NOW - 365 * DAY for k in range(N_ITEMS)]),
    repeatable=np.zeros(N_ITEMS, dtype=bool),
)


@pytest.fixture(autouse=True, params=["reference", "core"])
def implementation(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every case runs on the reference re-ranker and on the compiled core."""
    chosen = rerank_reference.rerank if request.param == "reference" else core_as_rerank
    monkeypatch.setitem(globals(), "rerank", chosen)


rerank = rerank_reference.rerank
NO_DIVERSITY = RerankConfig(diversity="none", new_arrival_boost=0.0)


def cands(*pairs: tuple[int, float]) -> Candidates:
    return Candidates(
        np.array([p[0] for p in pairs], dtype=np.int32),
        np.array([p[1] for p in pairs], dtype=np.float32),
    )


POPULAR = cands((9, 9.0), (8, 8.0), (7, 7.0), (6, 6.0), (5, 5.0))
FALLBACK = Fallback(
    popular=POPULAR,
    trending_by_category={"Books": cands((5, 3.0), (2, 2.0)), "Home > Garden": cands((4, 1.0))},
)
MODEL = cands((0, 0.9), (1, 0.8), (2, 0.7), (3, 0.6))


def run(
    candidates: Candidates = MODEL,
    state: OnlineState | None = None,
    similar: dict[str, Candidates] | None = None,
    config: RerankConfig = NO_DIVERSITY,
    **request: object,
) -> list[tuple[str, str]]:
    state = state or OnlineState()
    req = RerankRequest(now=NOW, **request)  # type: ignore[arg-type]
    seeds = session_seeds(state, req, config)
    ranked = rerank(TABLE, candidates, state, seeds, similar or {}, FALLBACK, req, config)
    assert len({r.item_id for r in ranked}) == len(ranked)  # never a duplicate
    return [(r.item_id, r.reason_code) for r in ranked]


def test_model_order_and_for_you() -> None:
    assert run(n=3) == [("i0", "for_you"), ("i1", "for_you"), ("i2", "for_you")]


def test_short_personal_list_is_filled_from_popular() -> None:
    got = run(n=6)
    assert [g[0] for g in got] == ["i0", "i1", "i2", "i3", "i9", "i8"]
    assert got[-1][1] == "popular"


def test_recent_view_pulls_in_similar_items_with_reason() -> None:
    state = OnlineState(recent=(Activity("i6", "view", NOW - 10),))
    similar = {"i6": cands((7, 0.9), (3, 0.8))}
    ranked = run(state=state, similar=similar, n=3)
    assert ranked[0] == ("i7", "similar_to_viewed")  # session similarity beats model score
    assert ("i6", "similar_to_viewed") not in ranked  # the seed itself only via other lists
    req = RerankRequest(now=NOW, n=1)
    seeds = session_seeds(state, req, NO_DIVERSITY)
    item = rerank(TABLE, MODEL, state, seeds, similar, FALLBACK, req, NO_DIVERSITY)[0]
    assert item.reason == "because you viewed i6"


def test_older_activity_weighs_less() -> None:
    state = OnlineState(
        recent=(Activity("i1", "view", NOW - 60), Activity("i2", "view", NOW - 3 * 3600))
    )
    seeds = session_seeds(state, RerankRequest(now=NOW), RerankConfig())
    assert [s.item_id for s in seeds] == ["i1", "i2"]
    assert seeds[0].weight > 4 * seeds[1].weight


def test_purchased_and_out_of_stock_are_removed() -> None:
    state = OnlineState(purchased={"i0": NOW})
    got = [g[0] for g in run(cands((0, 1.0), (11, 0.9), (1, 0.5)), state, n=2)]
    assert got == ["i1", "i9"]


def test_repeatable_category_may_be_bought_again() -> None:
    state = OnlineState(purchased={"i0": NOW})
    config = RerankConfig(diversity="none", repeatable_categories=("Home > Kitchen",))
    assert run(state=state, config=config, n=1)[0][0] == "i0"


def test_cart_items_excluded_and_cart_context_shows_complements() -> None:
    state = OnlineState(cart=("i0",))
    similar = {"i0": cands((8, 1.0), (4, 0.5))}
    home = run(state=state, similar=similar, n=3)
    assert "i0" not in [g[0] for g in home]
    cart = run(state=state, similar=similar, n=2, context="cart")
    assert cart == [("i8", "similar_to_cart"), ("i4", "similar_to_cart")]
    config = RerankConfig(diversity="none", cart_excluded_contexts=("home",))
    assert "i0" in [g[0] for g in run(state=state, config=config, n=3, context="email")]


def test_product_context_excludes_the_product_and_ranks_its_similar_items() -> None:
    similar = {"i1": cands((5, 1.0), (6, 0.9))}
    got = run(similar=similar, n=3, context="product", item_id="i1")
    assert got[:2] == [("i5", "similar_to_item"), ("i6", "similar_to_item")]
    assert "i1" not in [g[0] for g in got]


def test_exclude_list_category_and_price() -> None:
    assert [g[0] for g in run(n=2, exclude=("i0", "i9"))] == ["i1", "i2"]
    got = run(n=3, category="Home > Garden")
    assert [g[0] for g in got] == ["i1", "i4", "i7"]
    assert got[1][1] == "trending_in_category"
    got = run(n=10, exclude_categories=("Home",))
    assert {TABLE.categories[TABLE.category[int(i[1:])]] for i, _ in got} == {"Books"}
    got = run(n=3, price_min=25.0, price_max=50.0)  # prices are 10 * (k + 1)
    assert [g[0] for g in got] == ["i2", "i3"]  # i4 is in no list


def test_email_capping_only_in_email_context() -> None:
    state = OnlineState(email_sent={"i0": (NOW - DAY,), "i1": (NOW - DAY,)})
    assert [g[0] for g in run(state=state, n=2, context="email")] == ["i2", "i3"]
    assert [g[0] for g in run(state=state, n=2, context="home")] == ["i0", "i1"]


def test_boosts_new_arrivals_and_promoted() -> None:
    base = cands((0, 1.0), (10, 0.95), (3, 0.9))
    assert run(base, n=1)[0][0] == "i0"
    assert run(base, config=RerankConfig(diversity="none", new_arrival_boost=0.6), n=1) == [
        ("i10", "for_you")
    ]
    promoted = RerankConfig(
        diversity="none", new_arrival_boost=0.0, promoted=("i3",), promoted_boost=1.5
    )
    assert run(base, config=promoted, n=1)[0][0] == "i3"


def test_diversity_cap_and_mmr() -> None:
    model = cands((0, 1.0), (3, 0.9), (6, 0.8), (1, 0.7), (2, 0.6))  # 0,3,6 all Kitchen
    capped = run(model, config=RerankConfig(max_per_category=1, new_arrival_boost=0.0), n=3)
    assert [g[0] for g in capped] == ["i0", "i1", "i2"]
    mmr = RerankConfig(diversity="mmr", mmr_lambda=0.3, new_arrival_boost=0.0)
    assert [g[0] for g in run(model, config=mmr, n=3)] == ["i0", "i1", "i2"]
    # a cap too strict for n still returns n items
    assert len(run(model, config=RerankConfig(max_per_category=1), n=8)) == 8


def test_cold_start_chain() -> None:
    empty = Candidates.empty()
    # no candidates, no session: popular
    assert run(empty, n=2) == [("i9", "popular"), ("i8", "popular")]
    # no candidates, a session: session-based first, then trending in the viewed category
    state = OnlineState(recent=(Activity("i2", "view", NOW - 5),))
    got = run(empty, state, similar={"i2": cands((3, 1.0))}, n=4)
    assert got == [
        ("i3", "similar_to_viewed"),
        ("i5", "trending_in_category"),
        ("i2", "trending_in_category"),
        ("i9", "popular"),
    ]
    # a parent category merges the lists of its children
    got = run(empty, n=1, category="Home")
    assert got == [("i4", "trending_in_category")]


def test_fallback_category_order() -> None:
    state = OnlineState(recent=(Activity("unknown", "view", NOW), Activity("i1", "view", NOW)))
    assert fallback_category(TABLE, state, RerankRequest(now=NOW)) == "Home > Garden"
    req = RerankRequest(now=NOW, item_id="i2", context="product")
    assert fallback_category(TABLE, state, req) == "Books"
    assert fallback_category(TABLE, state, RerankRequest(now=NOW, category="X")) == "X"


def test_explicit_seed_and_empty_answers() -> None:
    req = RerankRequest(now=NOW, n=0)
    assert rerank(TABLE, MODEL, OnlineState(), (), {}, FALLBACK, req, NO_DIVERSITY) == []
    req = RerankRequest(now=NOW, n=2, exclude=tuple(f"i{k}" for k in range(N_ITEMS)))
    assert rerank(TABLE, MODEL, OnlineState(), (), {}, FALLBACK, req, NO_DIVERSITY) == []
    seeds = (Seed("i4", 1.0, "similar_to_item"),)
    req = RerankRequest(now=NOW, n=1)
    got = rerank(
        TABLE,
        Candidates.empty(),
        OnlineState(),
        seeds,
        {"i4": cands((7, 1.0))},
        FALLBACK,
        req,
        NO_DIVERSITY,
    )
    assert got[0].reason == "similar to i4"


@pytest.mark.parametrize("context", ["home", "product", "cart", "email"])
def test_scores_are_non_increasing(context: str) -> None:
    state = OnlineState(
        recent=(Activity("i4", "view", NOW - 100),), cart=("i5",), email_sent={"i9": (NOW,)}
    )
    similar = {"i4": cands((1, 1.0), (7, 0.5)), "i5": cands((8, 1.0)), "i6": cands((2, 1.0))}
    req = RerankRequest(now=NOW, n=10, context=context, item_id="i6")
    seeds = session_seeds(state, req, NO_DIVERSITY)
    ranked = rerank(TABLE, MODEL, state, seeds, similar, FALLBACK, req, NO_DIVERSITY)
    scores = [r.score for r in ranked]
    assert scores == sorted(scores, reverse=True)
    assert len(ranked) >= 5
