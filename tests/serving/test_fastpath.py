"""The compiled storefront path answers exactly what the general path answers.

Random catalogs, candidates, online state (in the store's own encoding) and requests: when
:func:`serving.fastpath.answer` answers, its JSON equals that of ``rerank`` (scores to the
sixth decimal); when it declines, the request is one it must leave to the general path.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from serving import fastpath
from serving.api.deps import items_json
from serving.rerank import Fallback, RerankConfig, RerankRequest, rerank, session_seeds
from serving.store import SEP, RawCustomer, encode_activity, encode_ranked
from serving.types import Candidates, ItemTable

NOW = 1_700_000_000.0
DAY = 86_400.0
EVENTS = ("view", "add_to_cart", "email_click", "purchase", "odd_event")


ODD_IDS = (
    'q"uote\\d',  # JSON escaping
    "caf\u00e9-\u2603",  # non-ASCII
    "tropical fruit",  # a space inside
    "liquor (appetizer)",
    "sku,1",
    "\u5546\u54c1123",  # CJK
    "{c:x}",  # braces (the store's hash tag)
    "a/b?c#d%e&f+g='h'",
    "\U0001f600 \u00a0nbsp",  # 4-byte UTF-8, a no-break space inside
    "x" * 255 + "\u00e9",  # the longest id (256 characters)
)
"""Ids the rule (``features.ids``) allows that ASCII-only code would get wrong."""


def catalog(rng: np.random.Generator, n_items: int) -> ItemTable:
    names = [f"sku{k}" for k in range(n_items)]
    names[: len(ODD_IDS)] = ODD_IDS[:n_items]
    cats = ("A", "A > B", "C", "D")
    return ItemTable(
        version="v1",
        item_ids=np.array(names, dtype=object),
        category=rng.integers(-1, len(cats), n_items).astype(np.int32),
        categories=cats,
        price=rng.random(n_items).astype(np.float32) * 100,
        in_stock=rng.random(n_items) > 0.1,
        created_at=NOW - rng.random(n_items) * 40 * DAY,
        repeatable=rng.random(n_items) < 0.1,
    )


def similar_lists(rng: np.random.Generator, table: ItemTable) -> dict[str, Candidates]:
    out = {}
    n = table.n_items
    for name in table.item_ids.tolist():
        k = int(rng.integers(0, 8))
        items = rng.choice(n, size=min(k, n), replace=False).astype(np.int32)
        scores = np.sort(rng.random(items.size).astype(np.float16))[::-1].astype(np.float32)
        if rng.random() < 0.1:
            scores[:] = 0  # an all-zero list
        out[name] = Candidates(items, scores)
    return out


def one_case(rng: np.random.Generator, table: ItemTable, config: RerankConfig) -> dict:
    n = table.n_items
    names = table.item_ids.tolist()
    k = int(rng.integers(0, 12))
    c_items = rng.choice(n, size=min(k, n), replace=False)
    c_scores = np.sort(rng.random(c_items.size))[::-1]
    if rng.random() < 0.1:
        c_scores[:] = 0.5  # a constant list
    payload = encode_ranked(c_items, c_scores) if c_items.size or rng.random() < 0.5 else None

    def some(count: int) -> list[str]:
        return [names[int(i)] for i in rng.integers(0, n, count)]

    recent = [
        encode_activity(
            NOW - float(rng.random() * 4 * 3600), str(rng.choice(EVENTS)), item
        ).encode()
        for item in some(int(rng.integers(0, 6)))
    ]
    cart = sorted(set(some(int(rng.integers(0, 3)))), key=lambda _: rng.random())
    bought: list[bytes] = []
    for item in set(some(int(rng.integers(0, 3)))):
        bought += [item.encode(), repr(NOW - 3600).encode()]
    context = str(rng.choice(["home", "home", "product", "cart"]))
    item_id = names[int(rng.integers(0, n))] if context == "product" else None
    exclude = tuple(set(some(int(rng.integers(0, 3))))) if rng.random() < 0.3 else ()
    request = RerankRequest(
        now=NOW, n=int(rng.integers(1, 8)), context=context, item_id=item_id, exclude=exclude
    )
    return {
        "payload": payload,
        "recent": recent,
        "cart": [c.encode() for c in cart],
        "bought": bought,
        "request": request,
    }


def general(case: dict, table: ItemTable, similar: dict, config: RerankConfig) -> list[dict]:
    raw = RawCustomer("v1", case["payload"], case["recent"], case["cart"], case["bought"], [])
    view = raw.view()
    request = case["request"]
    seeds = session_seeds(view.state, request, config)
    fallback = Fallback(popular=Candidates(np.arange(table.n_items), np.ones(table.n_items)))
    items = rerank(table, view.candidates, view.state, seeds, similar, fallback, request, config)
    return items_json(items)


CONFIGS = [
    RerankConfig(),
    RerankConfig(diversity="none", new_arrival_boost=0.0),
    RerankConfig(
        max_per_category=1,
        promoted=("sku3", "sku5"),
        repeatable_categories=("A",),
        cart_excluded_contexts=("home",),
        max_seeds=2,
        event_weights={"view": 1.0, "add_to_cart": 0.0, "purchase": 2.0},
    ),
]


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("n_items", [3, 40])
def test_fast_path_answers_like_the_general_path(config: RerankConfig, n_items: int) -> None:
    rng = np.random.default_rng(n_items)
    table = catalog(rng, n_items)
    similar = similar_lists(rng, table)
    # the "may be new" bitmap in use (built before the requests) or not (built after)
    built_at = NOW - 3600 if n_items > 3 else NOW + 3600
    compiled = fastpath.compile_version(table, similar, config, built_at=built_at)
    assert compiled is not None
    compiled_config = fastpath.compile_config(config)
    answered = 0
    for _ in range(600):
        case = one_case(rng, table, config)
        request = case["request"]
        assert fastpath.eligible(request, config)
        fast = fastpath.answer(
            compiled,
            compiled_config,
            request,
            case["payload"],
            case["recent"],
            case["cart"],
            case["bought"],
            table.index,
        )
        expected = general(case, table, similar, config)
        if fast is None:
            # declined only when the answer needs the cold-start chain
            assert len(expected) < request.n or any(
                e["reason_code"]
                not in {"for_you", "similar_to_viewed", "similar_to_cart", "similar_to_item"}
                for e in expected
            )
            continue
        answered += 1
        got = json.loads(fast)
        assert [g["item_id"] for g in got] == [e["item_id"] for e in expected]
        assert [g["reason"] for g in got] == [e["reason"] for e in expected]
        assert [g["reason_code"] for g in got] == [e["reason_code"] for e in expected]
        assert [g["score"] for g in got] == pytest.approx(
            [e["score"] for e in expected], abs=1.5e-6
        )
    assert answered > 50


def test_declines_what_it_does_not_handle() -> None:
    rng = np.random.default_rng(1)
    table = catalog(rng, 20)
    similar = similar_lists(rng, table)
    config = RerankConfig()
    compiled = fastpath.compile_version(table, similar, config)
    assert compiled is not None
    cc = fastpath.compile_config(config)
    payload = encode_ranked(np.arange(15), np.linspace(1, 0, 15))
    base = RerankRequest(now=NOW, n=5)
    assert fastpath.answer(compiled, cc, base, payload, [], [], [], table.index) is not None
    # an item the version does not know, in the state or on screen
    unknown = [f"{NOW!r}{SEP}view{SEP}nope".encode()]
    assert fastpath.answer(compiled, cc, base, payload, unknown, [], [], table.index) is None
    assert fastpath.answer(compiled, cc, base, payload, [], [b"nope"], [], table.index) is None
    on_screen = RerankRequest(now=NOW, n=5, context="product", item_id="nope")
    assert fastpath.answer(compiled, cc, on_screen, payload, [], [], [], table.index) is None
    # a malformed activity entry, and one whose timestamp needs more than one rounding to
    # read (repr's 17 digits: the store writes 6 decimals)
    bad = [f"soon{SEP}view{SEP}sku13".encode()]
    assert fastpath.answer(compiled, cc, base, payload, bad, [], [], table.index) is None
    long = [f"1761088697.3443801{SEP}view{SEP}sku13".encode()]
    assert fastpath.answer(compiled, cc, base, payload, long, [], [], table.index) is None
    short = [encode_activity(1761088697.3443801, "view", "sku13").encode()]
    assert fastpath.answer(compiled, cc, base, payload, short, [], [], table.index) is not None
    # a catalog that repeats an id
    twice = catalog(np.random.default_rng(2), 4)
    twice.item_ids[3] = twice.item_ids[0]
    twice.index.clear()
    twice.index.update({str(x): i for i, x in enumerate(twice.item_ids.tolist())})
    assert fastpath.compile_version(twice, similar_lists(rng, twice), config) is None
    # requests and configs for the general path
    assert not fastpath.eligible(RerankRequest(now=NOW, context="email"), config)
    assert not fastpath.eligible(RerankRequest(now=NOW, category="A"), config)
    assert not fastpath.eligible(RerankRequest(now=NOW, price_max=3.0), config)
    assert not fastpath.eligible(base, RerankConfig(diversity="mmr"))
    # a version whose similar lists are not all loaded is not compiled
    partial = dict(list(similar.items())[:-1])
    assert fastpath.compile_version(table, partial, config) is None


def test_long_answers_grow_the_output_buffer() -> None:
    """200 items with 256-character ids: more than the first buffer (64 KB) holds."""
    n_items = 400
    table = ItemTable(
        version="v1",
        item_ids=np.array([f"{k:03d}" + "x" * 253 for k in range(n_items)], dtype=object),
        category=np.full(n_items, -1, np.int32),
        categories=(),
        price=np.ones(n_items, np.float32),
        in_stock=np.ones(n_items, bool),
        created_at=np.full(n_items, NOW - 365 * DAY),
        repeatable=np.zeros(n_items, bool),
    )
    similar = {name: Candidates.empty() for name in table.item_ids.tolist()}
    config = RerankConfig()
    compiled = fastpath.compile_version(table, similar, config)
    assert compiled is not None
    payload = encode_ranked(np.arange(250), np.linspace(1, 0, 250))
    case = {"payload": payload, "recent": [], "cart": [], "bought": []}
    case["request"] = RerankRequest(now=NOW, n=200)
    fast = fastpath.answer(
        compiled, fastpath.compile_config(config), case["request"], payload, [], [], [], {}
    )
    assert fast is not None and len(fast) > 1 << 16
    got = json.loads(fast)
    expected = general(case, table, similar, config)
    assert [g["item_id"] for g in got] == [e["item_id"] for e in expected]
    assert [g["score"] for g in got] == pytest.approx([e["score"] for e in expected], abs=1.5e-6)


def test_similar_views_share_the_compiled_lists() -> None:
    rng = np.random.default_rng(3)
    table = catalog(rng, 30)
    similar = similar_lists(rng, table)
    compiled = fastpath.compile_version(table, similar, RerankConfig())
    assert compiled is not None
    views = fastpath.similar_views(compiled, table.item_ids.tolist())
    assert views.keys() == similar.keys()
    for name, lists in similar.items():
        assert views[name].items.tolist() == lists.items.tolist()
        assert views[name].scores.tolist() == lists.scores.tolist()
        assert views[name].items.dtype == np.int32 and views[name].scores.dtype == np.float32
        assert len(views[name]) == 0 or np.shares_memory(views[name].items, compiled.sim_items)


def test_timestamps_are_read_exactly_as_python_reads_them() -> None:
    rng = np.random.default_rng(5)
    for ts in [*(1.0e9 + rng.random(5000) * 1.0e9), 0.0, 1e-6, 12.5, 1761088697.3443801]:
        text = encode_activity(float(ts), "view", "x").split(SEP)[0]
        buf = np.frombuffer(text.encode(), np.uint8)
        assert fastpath._parse_float(buf, 0, buf.size) == float(text)
    for text in ["1.5e3", "-2.25", "+7"]:
        buf = np.frombuffer(text.encode(), np.uint8)
        assert fastpath._parse_float(buf, 0, buf.size) == float(text)
    for text in ["", ".", "1.2.3", "1e", "abc", "12345678901234567890", "1e400"]:
        buf = np.frombuffer(text.encode(), np.uint8)
        assert np.isnan(fastpath._parse_float(buf, 0, buf.size))
