"""The sparse pair summing (features.interactions.pair_weights) behind build_matrices and
aggregate agrees with a straightforward per-event Python aggregation on random small shops."""

from __future__ import annotations

import math
import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from features.idmap import IdMap
from features.interactions import InteractionConfig, aggregate
from features.matrices import build_matrices
from features.schema import EVENT_SCHEMA

T0 = datetime(2024, 3, 1, tzinfo=UTC)
TYPES = ["view", "add_to_cart", "remove_from_cart", "purchase", "email_open", "rating_neg"]
TYPES += ["wishlist"]  # not in the weight table: ignored

Row = tuple[str, str, str, datetime, float | None]


def random_rows(seed: int, n: int = 400, *, numeric: bool = False) -> list[Row]:
    rng = random.Random(seed)
    # ids whose string order differs from their numeric order (c10 < c9, 10 < 9)
    c_prefix, i_prefix = ("", "") if numeric else ("c", "i")
    customers = [f"{c_prefix}{rng.randint(1, 30)}" for _ in range(n)]
    items = [f"{i_prefix}{rng.randint(1, 25)}" for _ in range(n)]
    rows = []
    for c, i in zip(customers, items, strict=True):
        kind = rng.choices(TYPES, weights=[6, 3, 3, 2, 1, 1, 1])[0]
        ts = T0 + timedelta(hours=rng.randint(0, 24 * 60))
        quantity = rng.choice([None, 1.0, 2.0, 3.0])
        rows.append((c, i, kind, ts, quantity))
    return rows


def frame(rows: list[Row]) -> pl.DataFrame:
    n = len(rows)
    return pl.DataFrame(
        {
            "customer_id": [r[0] for r in rows],
            "item_id": [r[1] for r in rows],
            "event_type": [r[2] for r in rows],
            "timestamp": [r[3] for r in rows],
            "quantity": [r[4] for r in rows],
            "price": [None] * n,
            "channel": ["web"] * n,
            "session_id": [None] * n,
            "value": [None] * n,
        },
        schema=EVENT_SCHEMA,
    )


def reference_pairs(rows: list[Row], config: InteractionConfig) -> dict[tuple[str, str], float]:
    """Raw weight per pair, written out event by event (steps 1-4 of features.interactions)."""
    latest = max(r[3] for r in rows)
    ref = config.reference_time or latest
    sums: dict[tuple[str, str], float] = defaultdict(float)
    for customer, item, kind, ts, quantity in rows:
        w = config.weights.get(kind, 0.0)
        if kind in config.quantity_types:
            w *= 1.0 if quantity is None else quantity
        if config.half_life_days is not None:
            age = max(0.0, (ref - ts).total_seconds() / 86400)
            w *= 0.5 ** (age / config.half_life_days)
        sums[(customer, item)] += w
    pairs = {k: v for k, v in sums.items() if v > 1e-9}
    passes = 0
    while config.support_passes is None or passes < config.support_passes:
        before = len(pairs)
        for position, minimum in ((0, config.min_customer_support), (1, config.min_item_support)):
            if minimum > 1:
                count: dict[str, int] = defaultdict(int)
                for key in pairs:
                    count[key[position]] += 1
                pairs = {k: v for k, v in pairs.items() if count[k[position]] >= minimum}
        passes += 1
        if len(pairs) == before:
            break
    return pairs


def scaled(raw: float, config: InteractionConfig) -> float:
    value = config.alpha * raw
    return math.log1p(value) if config.confidence == "log1p" else value


def dense_reference(
    pairs: dict[tuple[str, str], float],
    config: InteractionConfig,
    customers: list[str],
    items: list[str],
) -> np.ndarray:
    out = np.zeros((len(customers), len(items)))
    rows = {c: k for k, c in enumerate(customers)}
    cols = {i: k for k, i in enumerate(items)}
    for (c, i), raw in pairs.items():
        if c in rows and i in cols:
            out[rows[c], cols[i]] = scaled(raw, config)
    return out


CONFIGS = [
    InteractionConfig(confidence="linear"),
    InteractionConfig(),
    InteractionConfig(confidence="linear", alpha=2.5, quantity_types=("purchase",)),
    InteractionConfig(half_life_days=7.0, alpha=0.5),
    InteractionConfig(half_life_days=3.0, reference_time=T0 + timedelta(days=20)),
    InteractionConfig(min_customer_support=3, min_item_support=4),
    InteractionConfig(min_customer_support=3, min_item_support=4, support_passes=1),
    InteractionConfig(confidence="linear").with_weights(wishlist=2.0, view=0.0),
    # a long weight table (a hash lookup instead of a comparison chain)
    InteractionConfig(weights={**{f"t{k}": 1.0 for k in range(20)}, "view": 2.0, "purchase": 4.0}),
    InteractionConfig(weights={"view": 0.0}),  # nothing weighs: empty matrix
]


@pytest.mark.parametrize("numeric", [False, True], ids=["text_ids", "integer_ids"])
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: repr(sorted(c.to_dict().items())))
def test_build_matrices_equals_straightforward_aggregation(
    seed: int, config: InteractionConfig, numeric: bool
) -> None:
    rows = random_rows(seed, numeric=numeric)
    pairs = reference_pairs(rows, config)
    m = build_matrices(frame(rows), config)
    customers = sorted({c for c, _ in pairs})
    items = sorted({i for _, i in pairs})
    assert list(m.customers.ids) == customers
    assert list(m.items.ids) == items
    assert m.interactions.nnz == len(pairs) == m.meta["pairs"]
    assert m.interactions.has_sorted_indices
    expected = dense_reference(pairs, config, customers, items)
    np.testing.assert_allclose(m.interactions.toarray(), expected, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("seed", [3, 4])
def test_aggregate_equals_straightforward_aggregation(seed: int) -> None:
    rows = random_rows(seed, n=200)
    config = InteractionConfig(half_life_days=5.0, quantity_types=("purchase",))
    pairs = reference_pairs(rows, config)
    out = aggregate(frame(rows), config)
    got = {(c, i): (w, raw, n, ts) for c, i, w, n, ts, raw in out.iter_rows()}
    assert set(got) == set(pairs)
    keys = list(got)
    assert keys == sorted(keys)  # rows sorted by customer, then item
    for key, raw in pairs.items():
        weighted = [r for r in rows if (r[0], r[1]) == key and config.weights.get(r[2], 0.0)]
        w, got_raw, n_events, last_ts = got[key]
        assert got_raw == pytest.approx(raw, rel=1e-9)
        assert w == pytest.approx(scaled(raw, config), rel=1e-9)
        assert n_events == len(weighted)
        assert last_ts == max(r[3] for r in weighted)


@pytest.mark.parametrize("numeric", [False, True], ids=["text_ids", "integer_ids"])
@pytest.mark.parametrize("seed", [5, 6])
def test_given_maps_stay_stable_and_unknown_pairs_are_counted(seed: int, numeric: bool) -> None:
    rows = random_rows(seed, numeric=numeric)
    config = InteractionConfig(confidence="linear")
    # the first build never sees customers ending in 7 or items ending in 3
    first = [r for r in rows[:200] if not r[0].endswith("7") and not r[1].endswith("3")]
    later = rows[200:]
    base = build_matrices(frame(first), config)
    old_c, old_i = list(base.customers.ids), list(base.items.ids)
    pairs = reference_pairs(later, config)

    grown = build_matrices(frame(later), config, customers=base.customers, items=base.items)
    new_c = sorted({c for c, _ in pairs} - set(old_c))
    new_i = sorted({i for _, i in pairs} - set(old_i))
    assert list(grown.customers.ids) == old_c + new_c
    assert list(grown.items.ids) == old_i + new_i
    expected = dense_reference(pairs, config, old_c + new_c, old_i + new_i)
    np.testing.assert_allclose(grown.interactions.toarray(), expected, rtol=1e-6)
    assert grown.meta["dropped_unknown"] == 0

    frozen = build_matrices(
        frame(later), config, customers=base.customers, items=base.items, extend=False
    )
    assert frozen.customers == base.customers and frozen.items == base.items
    expected = dense_reference(pairs, config, old_c, old_i)
    np.testing.assert_allclose(frozen.interactions.toarray(), expected, rtol=1e-6)
    unknown = [k for k in pairs if k[0] not in old_c or k[1] not in old_i]
    assert frozen.meta["dropped_unknown"] == len(unknown) > 0
    assert frozen.interactions.nnz == len(pairs) - len(unknown)


def test_shuffled_maps_and_empty_or_null_input() -> None:
    rows = random_rows(7, n=100)
    config = InteractionConfig(confidence="linear")
    pairs = reference_pairs(rows, config)
    customers = sorted({c for c, _ in pairs})
    items = sorted({i for _, i in pairs})
    random.Random(0).shuffle(customers)
    random.Random(1).shuffle(items)
    m = build_matrices(
        frame(rows), config, customers=IdMap(customers), items=IdMap(items), extend=False
    )
    expected = dense_reference(pairs, config, customers, items)
    np.testing.assert_allclose(m.interactions.toarray(), expected, rtol=1e-6)
    assert m.interactions.has_sorted_indices

    empty = build_matrices(frame(rows).head(0), config)
    assert empty.shape == (0, 0) and empty.interactions.nnz == 0
    assert aggregate(frame(rows).head(0)).height == 0
    with pytest.raises(ValueError, match="null customer_id"):
        build_matrices(frame(rows).with_columns(customer_id=pl.lit(None, pl.String)), config)


@pytest.mark.parametrize(
    "ids",
    [
        ["10", "9", "10", "100", "1", "9"],  # plain integers: string order 1 < 10 < 100 < 9
        ["-3", "7", "0", "-12", "7"],  # negative ones
        ["7", "07", "+7", "7"],  # one number written three ways: three ids
        ["-0", "0", "5"],
        ["-05", "-5", "00", "0"],
        ["1e2", "100", "12 ", " 12", "12"],  # read as text: the cast rejects these
        ["5", "5000000000", "17"],  # a range too sparse for a table
        ["9223372036854775807", "-9223372036854775808", "1"],  # the Int64 extremes
        ["12", "x12", "3"],  # not all integers
        ["4"],
    ],
)
def test_integer_id_codes_equal_the_general_path(ids: list[str]) -> None:
    from features.interactions import _codes, _integer_codes

    numbers = [int(i) for i in ids if i.lstrip("-").isdigit()]
    plain = len(numbers) == len(ids) and [str(n) for n in numbers] == ids
    if plain and max(numbers) - min(numbers) < 1000:
        assert _integer_codes(pl.Series(ids)) is not None  # plain integers take the fast path

    series = pl.Series("customer_id", ids, dtype=pl.String)
    codes, distinct = _codes(series)
    assert distinct.to_list() == sorted(set(ids))
    assert distinct.dtype == pl.String
    assert [distinct[int(c)] for c in codes] == ids
