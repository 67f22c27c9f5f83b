"""The compiled re-ranking kernels against hand-computed cases."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

import numpy as np
import pytest

from serving import kernels

NOTHING = np.empty(0, np.int64)
NO_FLAGS = np.empty(0, bool)


def pool(
    c_items: list[int],
    c_scores: list[float],
    lists: list[tuple[list[int], list[float], float]] = (),  # type: ignore[assignment]
    *,
    model_weight: float = 1.0,
    session_weight: float = 1.0,
    created_at: np.ndarray | None = None,
    new_boost: float = 0.0,
    promoted: list[int] = (),  # type: ignore[assignment]
    promoted_boost: float = 0.0,
) -> tuple[list[int], list[float], list[int]]:
    starts = np.cumsum([0, *(len(items) for items, _, _ in lists)])
    items, score, seed = kernels.personal_pool(
        np.asarray(c_items, np.int64),
        np.asarray(c_scores, np.float64),
        np.asarray([i for items, _, _ in lists for i in items], np.int64),
        np.asarray([s for _, scores, _ in lists for s in scores], np.float64),
        starts.astype(np.int64),
        np.asarray([w for _, _, w in lists], np.float64),
        model_weight,
        session_weight,
        np.zeros(10) if created_at is None else created_at,
        np.empty(0, np.uint8),
        100.0,
        new_boost,
        np.asarray(sorted(promoted), np.int64),
        promoted_boost,
    )
    return items.tolist(), score.tolist(), seed.tolist()


def test_candidates_alone_are_min_max_normalised_best_first() -> None:
    items, score, seed = pool([4, 2, 7], [3.0, 1.0, 2.0], model_weight=2.0)
    assert items == [4, 7, 2]
    assert score == pytest.approx([2.0, 1.0, 0.0])
    assert seed == [-1, -1, -1]
    # a constant list counts fully
    assert pool([1, 2], [5.0, 5.0])[1] == [1.0, 1.0]


def test_similar_lists_scale_to_their_maximum_sum_per_item_and_name_their_seed() -> None:
    items, score, seed = pool(
        [1, 2],
        [1.0, 0.0],
        [([2, 3], [0.5, 0.25], 2.0), ([3, 4], [4.0, -1.0], 1.0)],
        session_weight=0.5,
    )
    # item 1: model 1.0; item 2: model 0 + 0.5 * (0.5/0.5 * 2) = 1.0 -> seed 0
    # item 3: 0.5 * (0.25/0.5 * 2 + 4/4 * 1) = 1.0 -> strongest entry: the second list (ties:
    # the later list); item 4: a negative similarity counts 0
    assert items == [1, 2, 3, 4]
    assert score == pytest.approx([1.0, 1.0, 1.0, 0.0])
    assert seed == [-1, 0, 1, -1]


def test_all_zero_list_counts_one_per_entry_and_item_listed_twice_keeps_best_model() -> None:
    items, score, seed = pool([5, 5, 6], [2.0, 4.0, 0.0], [([6], [0.0], 3.0)])
    # item 5: its best normalised score (4 - 0) / 4 = 1; item 6: model 0 + 1 x weight 3
    assert items == [6, 5]
    assert score == pytest.approx([3.0, 1.0])
    assert seed == [0, -1]


def test_boosts_and_ties_go_to_the_lower_item() -> None:
    created = np.zeros(10)
    created[3] = 150.0  # after new_after (100): a new arrival
    items, score, _ = pool(
        [3, 8, 9],
        [1.0, 1.0, 1.0],
        created_at=created,
        new_boost=0.5,
        promoted=[9],
        promoted_boost=0.5,
    )
    assert items == [3, 9, 8]
    assert score == pytest.approx([1.5, 1.5, 1.0])


def test_empty_pool() -> None:
    assert pool([], []) == ([], [], [])


def pick(
    order: list[int],
    items: list[int],
    *,
    in_stock: list[bool] | None = None,
    banned: list[int] = (),  # type: ignore[assignment]
    keep: list[bool] | None = None,
    categories: list[int] | None = None,
    n: int = 10,
    cap: int = 0,
    fill: bool = False,
) -> list[int]:
    n_items = 10
    cats = np.asarray(categories if categories is not None else [-1] * n_items, np.int32)
    return kernels.pick(
        np.asarray(order, np.int64),
        np.asarray(items, np.int64),
        np.asarray(in_stock if in_stock is not None else [True] * n_items, bool),
        np.asarray(sorted(banned), np.int64),
        NO_FLAGS if keep is None else np.asarray(keep, bool),
        cats,
        int(cats.max()) + 1,
        n,
        cap,
        fill,
    ).tolist()


def test_pick_drops_out_of_stock_banned_and_filtered_items_in_order() -> None:
    stock = [True] * 10
    stock[5] = False
    items = [5, 6, 7, 8, 9]  # positions 0..4
    assert pick([4, 3, 2, 1, 0], items, in_stock=stock) == [4, 3, 2, 1]
    assert pick([0, 1, 2, 3, 4], items, in_stock=stock, banned=[8, 6]) == [2, 4]
    assert pick([0, 1, 2, 3, 4], items, keep=[True, True, False, True, False], n=2) == [0, 1]


def test_pick_caps_categories_and_fills_from_what_the_cap_held_back() -> None:
    categories = [0, 0, 0, 1, -1, -1, 0, 0, 0, 0]
    order, items = [0, 1, 2, 3, 4, 5], [0, 1, 2, 3, 4, 5]
    assert pick(order, items, categories=categories, cap=2) == [0, 1, 3, 4, 5]
    assert pick(order, items, categories=categories, cap=1, n=3) == [0, 3, 4]
    assert pick(order, items, categories=categories, cap=1, n=6, fill=True) == [0, 3, 4, 5, 1, 2]
    assert pick(order, items, categories=categories, cap=0, n=2) == [0, 1]  # no cap


class Case(NamedTuple):
    """One random request for the pool and pick kernels."""

    pool: tuple[Any, ...]  # personal_pool's arguments
    fused: tuple[Any, ...]  # the same for personal_top, with a "may be new" bitmap
    stock: np.ndarray
    banned: np.ndarray
    cats: np.ndarray  # categories 0..5, -1 none
    n: int
    cap: int

    def top(self) -> tuple[np.ndarray, ...]:
        return kernels.personal_top(
            *self.fused, self.stock, self.banned, self.cats, 6, self.n, self.cap
        )


def random_cases(seed: int, count: int) -> Iterator[Case]:
    """Random requests on a 400-item catalog (coarse scores: many ties; bans; caps)."""
    rng = np.random.default_rng(seed)
    n_items = 400
    created, stock = rng.random(n_items) * 200, rng.random(n_items) > 0.3
    cats = rng.integers(-1, 6, n_items).astype(np.int32)
    for _ in range(count):
        n_cand, lens = int(rng.integers(0, 150)), rng.integers(0, 60, int(rng.integers(0, 4)))
        args = (
            rng.integers(0, n_items, n_cand).astype(np.int64),
            np.round(rng.random(n_cand) * 3, 1),  # coarse scores: many ties
            rng.integers(0, n_items, int(lens.sum())).astype(np.int64),
            np.round(rng.random(int(lens.sum())) * 2 - 0.2, 1),
            np.concatenate([[0], np.cumsum(lens)]).astype(np.int64),
            np.round(rng.random(lens.size) * 2, 1),
            1.0,
            1.2,
            created,
            np.empty(0, np.uint8),  # every item may be new
            100.0,
            0.1,
            np.sort(rng.choice(n_items, 3, replace=False)).astype(np.int64),
            0.2,
        )
        # the fused kernel with a "may be new" bitmap (a superset of the new items): the
        # same scores
        maybe_new = np.packbits(created >= 60.0, bitorder="little")
        fused_args = (*args[:9], maybe_new, *args[10:])
        banned = np.unique(rng.integers(0, n_items, int(rng.integers(0, 40)))).astype(np.int64)
        n, cap = int(rng.integers(1, 15)), int(rng.integers(0, 3))
        yield Case(args, fused_args, stock, banned, cats, n, cap)


@pytest.mark.parametrize("seed", range(4))
def test_personal_top_is_personal_pool_then_pick(seed: int) -> None:
    """The fused kernel orders only the head of big pools; what it picks (and, when the
    rules hold too many back, the whole pool) must be exactly the two-step answer."""
    for case in random_cases(seed, 300):
        n, cap, stock, banned, cats = case.n, case.cap, case.stock, case.banned, case.cats
        items, score, seeds = kernels.personal_pool(*case.pool)
        expected = kernels.pick(
            np.arange(items.size), items, stock, banned, NO_FLAGS, cats, 6, n, cap, False
        )
        t_items, t_score, t_seeds, chosen = case.top()
        if items.size < n:
            assert chosen.size == 0
        else:
            assert t_items[chosen].tolist() == items[expected].tolist()
            assert t_score[chosen].tolist() == score[expected].tolist()
            assert t_seeds[chosen].tolist() == seeds[expected].tolist()
        if chosen.size < n:  # the pool goes on to the fallback chain: wholly best first
            assert t_items.tolist() == items.tolist() and t_score.tolist() == score.tolist()
        assert sorted(t_items.tolist()) == sorted(items.tolist())
