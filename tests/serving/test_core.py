"""The compiled core answers exactly what the reference re-ranker answers.

Random catalogs (ids that need JSON escaping, non-ASCII, unknown categories), candidates,
online state (recent activity of every event type, the cart, purchases, email sends, ids the
version does not know) and requests covering every field of ``RerankRequest`` and every
option of ``RerankConfig``: the core's JSON must equal the reference's (scores to the
sixth decimal). And a test that fails when a request or config field is added that the
core's builders never read.
"""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
from core_adapter import core_rerank
from rerank_reference import Seed, rerank, session_seeds

from serving.core import arrays as core_arrays
from serving.rerank import SIMILAR_TO_ITEM, Fallback, RerankConfig, RerankRequest
from serving.store.codec import decode_ranked, encode_ranked
from serving.types import Activity, Candidates, ItemTable, OnlineState

NOW = 1_700_000_000.0
DAY = 86_400.0
EVENTS = ("view", "add_to_cart", "email_click", "purchase", "odd_event")
CATEGORIES = ("A", "A > B", "A > B > C", "D", "E > F")
ODD_IDS = (
    'q"uote\\d',
    "caf\u00e9-\u2603",
    "tropical fruit",
    "liquor (appetizer)",
    "sku,1",
    "\u5546\u54c1123",
    "{c:x}",
    "a/b?c#d%e&f+g='h'",
    "\U0001f600 \u00a0nbsp",
    "x" * 255 + "\u00e9",
)


def catalog(rng: np.random.Generator, n_items: int) -> ItemTable:
    names = [f"sku{k}" for k in range(n_items)]
    names[: len(ODD_IDS)] = ODD_IDS[:n_items]
    return ItemTable(
        version="v1",
        item_ids=np.array(names, dtype=object),
        category=rng.integers(-1, len(CATEGORIES), n_items).astype(np.int32),
        categories=CATEGORIES,
        price=np.where(rng.random(n_items) < 0.1, np.nan, rng.random(n_items) * 100).astype(
            np.float32
        ),
        in_stock=rng.random(n_items) > 0.1,
        created_at=np.where(
            rng.random(n_items) < 0.1, np.nan, NOW - rng.random(n_items) * 40 * DAY
        ),
        repeatable=rng.random(n_items) < 0.1,
    )


def ranked(rng: np.random.Generator, n: int, k: int) -> Candidates:
    items = rng.choice(n, size=min(k, n), replace=False).astype(np.int32)
    scores = np.sort(rng.random(items.size))[::-1]
    if rng.random() < 0.1:
        scores[:] = 0.5  # a constant list
    return decode_ranked(encode_ranked(items, scores))  # as stored: float16 scores


def lists(rng: np.random.Generator, table: ItemTable) -> tuple[dict[str, Candidates], Fallback]:
    n = table.n_items
    similar = {}
    for name in table.item_ids.tolist():
        if rng.random() < 0.9:
            similar[name] = ranked(rng, n, int(rng.integers(0, 8)))
            if rng.random() < 0.1:
                similar[name] = Candidates(similar[name].items, similar[name].scores * 0)
    by_category = {
        path: ranked(rng, n, int(rng.integers(1, 6))) for path in CATEGORIES if rng.random() < 0.6
    }
    fallback = Fallback(
        popular=ranked(rng, n, int(rng.integers(0, 10))),
        trending=ranked(rng, n, int(rng.integers(0, 6))),
        trending_by_category=by_category,
    )
    return similar, fallback


def state_of(rng: np.random.Generator, names: list[str]) -> OnlineState:
    def some(count: int) -> list[str]:
        pool = [*names, "unknown item", "never seen \u00e9"]
        return [pool[int(i)] for i in rng.integers(0, len(pool), count)]

    recent = tuple(
        Activity(item, str(rng.choice(EVENTS)), NOW - round(float(rng.random()) * 4 * 3600, 3))
        for item in some(int(rng.integers(0, 7)))
    )
    sends = [NOW - round(float(rng.random()) * 10 * DAY, 3) for _ in range(4)]
    email = {
        item: tuple(sorted(set(rng.choice(sends, int(rng.integers(1, 3))).tolist())))
        for item in set(some(int(rng.integers(0, 5))))
    }
    return OnlineState(
        recent=recent,
        cart=tuple(sorted(set(some(int(rng.integers(0, 4)))))),
        purchased={item: NOW - 3600.0 for item in some(int(rng.integers(0, 3)))},
        email_sent=email,
    )


def request_of(rng: np.random.Generator, names: list[str]) -> RerankRequest:
    context = str(rng.choice(["home", "product", "cart", "email"]))
    pick = rng.random
    item = (
        str(rng.choice([*names, "unknown item"])) if context == "product" or pick() < 0.2 else None
    )
    low = float(rng.random() * 50) if pick() < 0.2 else None
    category = (
        str(rng.choice([*CATEGORIES, "a > b", "Nowhere", "A > Z"])) if pick() < 0.25 else None
    )
    return RerankRequest(
        now=NOW,
        n=int(rng.integers(0, 9)),
        context=context,
        item_id=item,
        category=category,
        exclude_categories=tuple(rng.choice(CATEGORIES, int(rng.integers(1, 3))).tolist())
        if pick() < 0.2
        else (),
        exclude=tuple(rng.choice(names, int(rng.integers(1, 3))).tolist()) if pick() < 0.3 else (),
        price_min=low,
        price_max=(low or 0) + float(rng.random() * 80) if pick() < 0.2 else None,
    )


CONFIGS = [
    RerankConfig(),
    RerankConfig(diversity="none", new_arrival_boost=0.0),
    RerankConfig(diversity="mmr", mmr_lambda=0.5),
    RerankConfig(
        max_per_category=1,
        promoted=("sku12", "sku15", ODD_IDS[2]),
        promoted_boost=0.7,
        repeatable_categories=("A",),
        cart_excluded_contexts=("home", "email"),
        max_seeds=2,
        event_weights={"view": 1.0, "add_to_cart": 0.0, "purchase": 2.0},
        model_weight=0.3,
        session_weight=2.5,
        session_half_life_s=600.0,
        cart_seed_weight=0.4,
        cart_context_seed_weight=3.0,
        product_seed_weight=0.9,
        new_arrival_days=30.0,
        new_arrival_boost=0.4,
        email_cap_last=1,
        email_cap_days=2.0,
    ),
    RerankConfig(max_seeds=0, email_cap_last=0, diversity="mmr", mmr_lambda=1.0),
]


@pytest.mark.parametrize("config", CONFIGS, ids=[f"config{k}" for k in range(len(CONFIGS))])
@pytest.mark.parametrize("n_items", [3, 40])
def test_the_core_answers_like_the_reference(config: RerankConfig, n_items: int) -> None:
    rng = np.random.default_rng(n_items * 7 + CONFIGS.index(config))
    table = catalog(rng, n_items)
    names = table.item_ids.tolist()
    similar, fallback = lists(rng, table)
    for _ in range(150):
        candidates = ranked(rng, n_items, int(rng.integers(0, 12)))
        state = state_of(rng, names)
        request = request_of(rng, names)
        similar_mode = request.item_id in table.index and rng.random() < 0.2
        if similar_mode:
            request = request._replace(context="product")
            seeds: tuple[Seed, ...] = (Seed(str(request.item_id), 1.0, SIMILAR_TO_ITEM),)
            candidates = Candidates.empty()
        else:
            seeds = session_seeds(state, request, config)
        want = rerank(table, candidates, state, seeds, similar, fallback, request, config)
        got = core_rerank(
            table, candidates, state, similar, fallback, request, config, similar_mode
        )
        assert [(r.item_id, r.reason, r.reason_code) for r in got] == [
            (r.item_id, r.reason, r.reason_code) for r in want
        ], request
        assert [r.score for r in got] == pytest.approx([r.score for r in want], abs=2e-6)


UNSUPPORTED: dict[str, str] = {}  # field -> why the core does not read it (none today)


@pytest.mark.parametrize("shape", [RerankRequest, RerankConfig])
def test_every_request_and_config_field_reaches_the_core(shape: type) -> None:
    """The core reads a request and the config only through ``serving.core.arrays``'s
    builders: a new field none of them reads (nor declared unsupported) fails here."""
    source = Path(core_arrays.__file__).read_text()
    name = "request" if shape is RerankRequest else "config"
    read = set(re.findall(rf"\b{name}\.(\w+)", source))
    names = shape._fields if shape is RerankRequest else [f.name for f in fields(shape)]
    missing = [f for f in names if f not in read and f not in UNSUPPORTED]
    assert not missing, f"{shape.__name__} fields the core never reads: {missing}"
