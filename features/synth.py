"""A seeded synthetic shop: catalog, customers with latent tastes, and their event history.

Everything is vectorised numpy (no per-event Python), so 10M events take seconds.

**Catalog.** A two-level category tree (top > leaf, e.g. ``Grocery > Coffee & Tea``); items
with a leaf category, a *style* (a latent within-category taste dimension, visible through the
``brand`` attribute), a price (log-normal around the top category's median), ``in_stock``,
``created_at`` (a quarter of the items appear during the simulated window: they cannot be
seen before they exist) and ``repeatable`` (consumable categories such as Grocery or Pet
Supplies get bought again). Popularity is a power law (Zipf over a random item order).

**Tastes** (the latent truth, :class:`Truth`). Each leaf category has a vector (its top
category's vector plus noise), each customer a vector; a customer's preference over leaves is
``softmax(sharpness * u . c / sqrt(k) + log leaf popularity)`` (a low-rank taste model), and
over styles a Dirichlet draw. An item is chosen as leaf (taste) -> style (taste) -> item
within (leaf, style) by popularity. Customer activity is log-normal.

**Sessions.** Each session has a customer, a time (seasonality: weekly cycle, a December peak,
Black Friday, an evening-heavy day; Garden/Toys/Sports have their own months), a channel and a
focus leaf. ``web``/``app``: views (mostly in the focus leaf) -> add_to_cart -> purchase at
checkout or remove_from_cart. ``email``: email_open of a recommended item, sometimes
email_click, then a browsing session. ``store``: purchases only. Purchases of repeatable items
are bought again every few weeks (``buy again``: purchase-only sessions).

**Dirty rows** are added when a shop is rendered in a layout (:func:`render_events`,
:func:`write_shop`): a ``dirty_fraction`` share of the written rows are exact duplicates, bad
or future timestamps, unknown event types, missing customer or item ids, or non-positive
purchase quantities, each violating exactly one rule. ``manifest.json`` beside the files
records the counts and what a validator must report.

**Layouts.** ``canonical``: the ``features.schema`` event columns, timestamps ISO 8601 UTC
(``2024-03-01T12:34:56Z``). ``retailrocket``: ``timestamp`` (epoch ms), ``visitorid``,
``event`` (view / addtocart / transaction), ``itemid``, ``transactionid`` (the checkout's
order number on transactions). RetailRocket cannot express email events, removals, quantities,
prices, channels or sessions: ``email_click`` becomes a ``view`` (the click opens the product
page), ``email_open`` and ``remove_from_cart`` rows are dropped (counted in the manifest), and
non-positive quantities, which it cannot carry, are not among its dirty kinds. Ids are numeric
strings in every layout, so one catalog file serves both.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl

from features.schema import CATEGORY_SEPARATOR, CHANNELS

Layout = Literal["canonical", "retailrocket"]
Format = Literal["csv", "parquet"]

# ---- the store's vocabulary -----------------------------------------------------------------

# top category -> (median price, repeatable, leaf categories)
CATEGORY_TREE: dict[str, tuple[float, bool, tuple[str, ...]]] = {
    "Grocery": (4.0, True, ("Coffee & Tea", "Snacks", "Pasta & Rice", "Breakfast", "Drinks")),
    "Beauty": (14.0, True, ("Skin Care", "Hair Care", "Makeup", "Fragrance", "Bath")),
    "Pet Supplies": (18.0, True, ("Dog Food", "Cat Food", "Litter", "Treats", "Toys & Beds")),
    "Household": (7.0, True, ("Cleaning", "Laundry", "Paper", "Storage", "Dishwashing")),
    "Baby": (16.0, True, ("Diapers", "Baby Food", "Wipes", "Feeding", "Bath & Care")),
    "Health": (11.0, True, ("Vitamins", "First Aid", "Oral Care", "Sleep", "Fitness Nutrition")),
    "Electronics": (110.0, False, ("Audio", "Phones", "Cameras", "Computers", "Accessories")),
    "Home & Kitchen": (38.0, False, ("Cookware", "Bedding", "Lighting", "Decor", "Appliances")),
    "Fashion": (34.0, False, ("Women", "Men", "Shoes", "Bags", "Jewelry")),
    "Sports": (42.0, False, ("Running", "Cycling", "Camping", "Fitness", "Team Sports")),
    "Toys": (24.0, False, ("Building Sets", "Dolls", "Puzzles", "Outdoor Play", "Games")),
    "Books": (14.0, False, ("Fiction", "Children", "Cooking", "Business", "Travel")),
    "Garden": (29.0, False, ("Plants", "Tools", "Furniture", "Grills", "Watering")),
    "Office": (9.0, False, ("Paper & Pens", "Desks", "Printers", "Organizers", "Bags")),
    "Automotive": (33.0, False, ("Care", "Parts", "Electronics", "Tools", "Tires")),
    "Music": (19.0, False, ("Vinyl", "Instruments", "Sheet Music", "Headphones", "Cables")),
}

# per top category: relative demand by month (Jan..Dec); others are flat
CATEGORY_SEASONS: dict[str, tuple[float, ...]] = {
    "Garden": (0.3, 0.4, 0.8, 1.0, 1.0, 1.0, 0.9, 0.7, 0.5, 0.4, 0.3, 0.3),
    "Toys": (0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.5, 0.6, 0.9, 1.0),
    "Sports": (0.9, 0.6, 0.7, 0.9, 1.0, 1.0, 1.0, 0.9, 0.8, 0.6, 0.5, 0.5),
}

BRANDS = (
    "Acme", "Northwind", "Contoso", "Globex", "Initech", "Umbrella", "Hooli", "Vandelay",
    "Soylent", "Wonka", "Tyrell", "Cyberdyne",
)  # fmt: skip
REGIONS = ("north", "south", "east", "west", "central", "abroad")
AGE_BANDS = ("18-24", "25-34", "35-44", "45-54", "55+")
WEEKDAY_FACTOR = np.array([0.95, 0.93, 0.97, 1.0, 1.06, 1.12, 1.05])  # Mon..Sun
HOUR_FACTOR = np.array(
    [2, 1, 1, 1, 1, 2, 4, 6, 7, 7, 7, 8, 9, 8, 7, 7, 8, 9, 10, 12, 13, 12, 8, 4], dtype=float
)
EVENT_TYPES = ("view", "add_to_cart", "remove_from_cart", "purchase", "email_open", "email_click")
VIEW, CART, REMOVE, PURCHASE, EMAIL_OPEN, EMAIL_CLICK = range(6)
WEB, APP, EMAIL, STORE = range(4)

DIRTY_KINDS = (
    "duplicate",
    "unparseable_timestamp",
    "future_timestamp",
    "unknown_event_type",
    "missing_customer_id",
    "missing_item_id",
    "non_positive_quantity",
)
"""Dirty row kinds; each but ``duplicate`` is named after the validator's quarantine reason."""
DIRTY_SHARES = (0.3, 0.14, 0.1, 0.14, 0.11, 0.11, 0.1)

SESSION_CHUNK = 200_000
"""Sessions simulated at once (bounds the working memory of :func:`generate`)."""

PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {"n_customers": 500, "n_items": 300, "n_events": 20_000, "n_top_categories": 8},
    # a small dense grocery-like shop: ~170 items, mostly in-store purchases, many repeats,
    # weak personal tastes and steep popularity (popularity is a strong baseline here)
    "grocery": {
        "n_customers": 3_900,
        "n_items": 170,
        "n_events": 40_000,
        "n_top_categories": 8,
        "channel_shares": (0.05, 0.05, 0.02, 0.88),
        "repeat_rate": 0.6,
        "taste_sharpness": 0.5,
        "popularity_exponent": 1.1,
        "style_concentration": 5.0,
    },
    "small": {"n_customers": 4_000, "n_items": 2_000, "n_events": 200_000},
    "demo": {"n_customers": 10_000, "n_items": 4_000, "n_events": 500_000},
    "bench": {"n_customers": 100_000, "n_items": 20_000, "n_events": 5_000_000},
    "large": {"n_customers": 200_000, "n_items": 40_000, "n_events": 10_000_000},
}


@dataclass(frozen=True)
class SynthConfig:
    """Size and behaviour of a synthetic shop. ``n_events`` counts the rows written in the
    canonical layout, dirty rows included (``dirty_fraction`` of them)."""

    n_customers: int = 2_000
    n_items: int = 1_000
    n_events: int = 100_000
    seed: int = 0
    dirty_fraction: float = 0.02
    start: datetime = datetime(2024, 1, 1, tzinfo=UTC)
    days: int = 365
    n_top_categories: int = 16
    n_factors: int = 8
    taste_sharpness: float = 3.0
    n_styles: int = 4
    style_concentration: float = 0.4
    popularity_exponent: float = 0.9
    mean_views: float = 4.0
    focus_share: float = 0.8
    view_to_cart: float = 0.18
    cart_to_purchase: float = 0.55
    cart_removal: float = 0.35
    email_click_rate: float = 0.3
    repeat_rate: float = 0.3
    repeat_continue: float = 0.65
    channel_shares: tuple[float, float, float, float] = (0.5, 0.3, 0.12, 0.08)
    new_item_share: float = 0.25
    out_of_stock_share: float = 0.06

    def __post_init__(self) -> None:
        if not 0.0 <= self.dirty_fraction < 0.5:
            raise ValueError("dirty_fraction must be in [0, 0.5)")
        if not 1 <= self.n_top_categories <= len(CATEGORY_TREE):
            raise ValueError(f"n_top_categories must be in 1..{len(CATEGORY_TREE)}")
        leaves = sum(len(v[2]) for v in list(CATEGORY_TREE.values())[: self.n_top_categories])
        if self.n_items < leaves * self.n_styles:
            raise ValueError(
                f"n_items must be >= {leaves * self.n_styles} (leaf categories x styles)"
            )
        if self.n_customers < 1 or self.n_events < 100 or self.days < 7:
            raise ValueError("need n_customers >= 1, n_events >= 100 and days >= 7")
        if len(self.channel_shares) != len(CHANNELS) or min(self.channel_shares) < 0:
            raise ValueError(f"channel_shares: one non-negative share per channel {CHANNELS}")

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> SynthConfig:
        """A named size: tiny (~20k events), small (200k), demo (500k), bench (5M), large (10M),
        or ``grocery`` (40k events, 170 items, dense, mostly purchases)."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose from {sorted(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})

    @property
    def end(self) -> datetime:
        return self.start + timedelta(days=self.days)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["start"] = self.start.isoformat()
        data["channel_shares"] = list(self.channel_shares)
        return data


@dataclass
class Truth:
    """The latent model behind a shop (indices are rows of ``Shop.customers``/``Shop.catalog``)."""

    customer_factors: np.ndarray  # (n_customers, k)
    leaf_factors: np.ndarray  # (n_leaves, k)
    leaf_preference: np.ndarray  # (n_customers, n_leaves), rows sum to 1
    style_preference: np.ndarray  # (n_customers, n_styles), rows sum to 1
    item_leaf: np.ndarray  # (n_items,)
    item_style: np.ndarray  # (n_items,)
    item_popularity: np.ndarray  # (n_items,), sums to 1 within each (leaf, style)
    customer_activity: np.ndarray  # (n_customers,), sums to 1
    leaves: list[str]  # leaf category paths

    def affinity(self, customers: np.ndarray) -> np.ndarray:
        """True probability that a focused view of each customer lands on each item."""
        leaf = self.leaf_preference[customers][:, self.item_leaf]
        style = self.style_preference[customers][:, self.item_style]
        return leaf * style * self.item_popularity[None, :]


@dataclass
class Shop:
    """A generated shop: clean events (``EVENT_SCHEMA``), catalog, customers and the truth."""

    config: SynthConfig
    events: pl.DataFrame
    catalog: pl.DataFrame
    customers: pl.DataFrame
    truth: Truth
    stats: dict[str, Any] = field(default_factory=dict)


# ---- sampling helpers -----------------------------------------------------------------------


class _RowSampler:
    """Draw one column per query row from a row-stochastic matrix, vectorised.

    The rows' cumulative sums are offset by their row number into one sorted array, so a
    single ``searchsorted`` of ``row + u`` samples every query at once.
    """

    def __init__(self, probs: np.ndarray) -> None:
        n, self.k = probs.shape
        cum = np.cumsum(probs, axis=1, dtype=np.float64)
        cum /= cum[:, -1:]
        cum += np.arange(n, dtype=np.float64)[:, None]
        self.flat = cum.ravel()

    def sample(self, rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        u = rng.random(len(rows)) * (1.0 - 1e-9)
        pos = np.searchsorted(self.flat, rows + u, side="right")
        return np.minimum(pos - rows * self.k, self.k - 1).astype(np.int32)


class _GroupSampler:
    """Draw an item of a given group (leaf x style) with probability ∝ its weight."""

    def __init__(self, group: np.ndarray, weight: np.ndarray, n_groups: int) -> None:
        order = np.lexsort((np.arange(len(group)), group))
        self.order = order.astype(np.int32)
        g = group[order]
        w = weight[order].astype(np.float64)
        totals = np.bincount(g, weights=w, minlength=n_groups)
        cum = np.cumsum(w)
        starts = np.concatenate([[0.0], np.cumsum(totals)[:-1]])
        self.flat = (cum - starts[g]) / totals[g] + g
        self.flat[np.r_[np.flatnonzero(np.diff(g)), len(g) - 1]] = np.unique(g) + 1.0

    def sample(self, groups: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        u = rng.random(len(groups)) * (1.0 - 1e-9)
        pos = np.searchsorted(self.flat, groups + u, side="right")
        return self.order[np.minimum(pos, len(self.order) - 1)]


def _segment_positions(counts: np.ndarray) -> np.ndarray:
    """0..c-1 for each count c, concatenated (position of a slot inside its session)."""
    total = int(counts.sum())
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    return np.arange(total, dtype=np.int64) - starts


def _softmax_rows(logits: np.ndarray) -> np.ndarray:
    logits = logits - logits.max(axis=1, keepdims=True)
    out = np.exp(logits)
    out /= out.sum(axis=1, keepdims=True)
    return out


# ---- catalog, customers and tastes ---------------------------------------------------------


def _build_catalog(config: SynthConfig, rng: np.random.Generator) -> tuple[pl.DataFrame, dict]:
    tops = list(CATEGORY_TREE)[: config.n_top_categories]
    leaves: list[str] = []
    leaf_top: list[int] = []
    for t, top in enumerate(tops):
        for leaf in CATEGORY_TREE[top][2]:
            leaves.append(f"{top}{CATEGORY_SEPARATOR}{leaf}")
            leaf_top.append(t)
    n_leaves, n_styles, n = len(leaves), config.n_styles, config.n_items
    # every (leaf, style) gets at least one item, the rest follow uneven leaf sizes
    base = np.arange(n_leaves * n_styles)
    leaf_size = rng.dirichlet(np.full(n_leaves, 2.0))
    item_leaf = np.concatenate(
        [base // n_styles, rng.choice(n_leaves, n - len(base), p=leaf_size)]
    ).astype(np.int32)
    item_style = np.concatenate([base % n_styles, rng.integers(0, n_styles, n - len(base))]).astype(
        np.int32
    )
    shuffle = rng.permutation(n)
    item_leaf, item_style = item_leaf[shuffle], item_style[shuffle]
    top_of_item = np.asarray(leaf_top)[item_leaf]

    rank = rng.permutation(n)
    popularity = (rank + 1.0) ** -config.popularity_exponent
    median = np.array([CATEGORY_TREE[t][0] for t in tops])[top_of_item]
    price = np.maximum(np.round(median * rng.lognormal(0.0, 0.6, n)), 1.0) - 0.01
    repeatable = np.array([CATEGORY_TREE[t][1] for t in tops])[top_of_item]
    start_s = int(config.start.timestamp())
    is_new = rng.random(n) < config.new_item_share
    created = np.where(
        is_new,
        start_s + rng.integers(0, config.days * 86_400, n),
        start_s - rng.integers(1, 730 * 86_400, n),
    )
    brand_of = (item_style * 3 + rng.integers(0, 3, n)) % len(BRANDS)
    item_ids = (500_000 + rng.permutation(n) * 3 + 1).astype(str)
    brands = np.asarray(BRANDS)[brand_of]
    leaf_names = np.array([leaf.split(CATEGORY_SEPARATOR)[1] for leaf in leaves])[item_leaf]
    catalog = pl.DataFrame(
        {
            "item_id": item_ids,
            "title": np.char.add(
                np.char.add(np.char.add(brands, " "), leaf_names),
                np.char.add(" #", np.arange(1, n + 1).astype(str)),
            ),
            "category": np.asarray(leaves)[item_leaf],
            "price": price,
            "in_stock": rng.random(n) >= config.out_of_stock_share,
            "created_at": pl.Series(created * 1_000_000).cast(pl.Datetime("us", "UTC")),
            "brand": brands,
            "repeatable": repeatable,
        },
        schema_overrides={"item_id": pl.String, "title": pl.String, "category": pl.String},
    )
    parts = {
        "leaves": leaves,
        "leaf_top": np.asarray(leaf_top),
        "tops": tops,
        "item_leaf": item_leaf,
        "item_style": item_style,
        "popularity": popularity,
        "created_s": created,
        "leaf_size": leaf_size,
    }
    return catalog, parts


def _build_tastes(
    config: SynthConfig, parts: dict, rng: np.random.Generator
) -> tuple[Truth, pl.DataFrame]:
    k, n_c = config.n_factors, config.n_customers
    n_tops = len(parts["tops"])
    top_vec = rng.normal(size=(n_tops, k))
    leaf_vec = top_vec[parts["leaf_top"]] + 0.6 * rng.normal(size=(len(parts["leaves"]), k))
    cust_vec = rng.normal(size=(n_c, k))
    item_leaf, item_style = parts["item_leaf"], parts["item_style"]
    leaf_pop = np.bincount(item_leaf, weights=parts["popularity"], minlength=len(parts["leaves"]))
    logits = config.taste_sharpness * (cust_vec @ leaf_vec.T) / math.sqrt(k)
    leaf_pref = _softmax_rows(logits + 0.5 * np.log(leaf_pop / leaf_pop.sum()))
    style_pref = rng.dirichlet(np.full(config.n_styles, config.style_concentration), size=n_c)
    style_pref = np.maximum(style_pref, 1e-6)
    style_pref /= style_pref.sum(axis=1, keepdims=True)
    group = item_leaf * config.n_styles + item_style
    group_total = np.bincount(group, weights=parts["popularity"])
    item_pop = parts["popularity"] / group_total[group]
    activity = rng.lognormal(0.0, 1.0, n_c)
    activity /= activity.sum()
    truth = Truth(
        customer_factors=cust_vec.astype(np.float32),
        leaf_factors=leaf_vec.astype(np.float32),
        leaf_preference=leaf_pref,
        style_preference=style_pref,
        item_leaf=item_leaf,
        item_style=item_style,
        item_popularity=item_pop,
        customer_activity=activity,
        leaves=parts["leaves"],
    )
    # attributes that correlate with taste (age band with factor 0, tier with activity)
    noisy = cust_vec[:, 0] + 0.7 * rng.normal(size=n_c)
    age = np.searchsorted(np.quantile(noisy, [0.15, 0.4, 0.65, 0.85]), noisy)
    tier = np.searchsorted(np.quantile(activity, [0.6, 0.9]), activity)
    customers = pl.DataFrame(
        {
            "customer_id": (1_000_000 + rng.permutation(n_c) * 7 + 3).astype(str),
            "region": np.asarray(REGIONS)[rng.choice(6, n_c, p=[.25, .2, .2, .2, .1, .05])],
            "age_band": np.asarray(AGE_BANDS)[age],
            "loyalty_tier": np.asarray(("bronze", "silver", "gold"))[tier],
            "signup_channel": np.asarray(CHANNELS)[rng.choice(4, n_c, p=[.45, .3, 0, .25])],
        },
        schema_overrides={"customer_id": pl.String},
    )  # fmt: skip
    return truth, customers


# ---- sessions and events -------------------------------------------------------------------


def _day_weights(config: SynthConfig) -> np.ndarray:
    days = np.arange(config.days)
    dates = [config.start + timedelta(days=int(d)) for d in days]
    weekday = WEEKDAY_FACTOR[[d.weekday() for d in dates]]
    doy = np.array([d.timetuple().tm_yday for d in dates])
    yearly = 1.0 + 0.25 * np.cos(2 * np.pi * (doy - 350) / 365.25)
    black_friday = np.array(
        [
            1.8 if d.month == 11 and d.weekday() in (4, 5, 6, 0) and d.day >= 22 else 1.0
            for d in dates
        ]
    )
    w = weekday * yearly * black_friday
    return w / w.sum()


def _expected_events_per_session(config: SynthConfig) -> float:
    v = config.mean_views
    browse = v * (
        1
        + config.view_to_cart
        * (1 + config.cart_to_purchase + (1 - config.cart_to_purchase) * config.cart_removal)
    )
    web, app, email, store = np.asarray(config.channel_shares) / sum(config.channel_shares)
    per = (web + app) * browse + email * (1 + config.email_click_rate * (1 + browse)) + store * 1.6
    return float(per)  # fmt: skip


@dataclass
class _Samplers:
    leaf: _RowSampler
    style: _RowSampler
    item: _GroupSampler

    @classmethod
    def of(cls, truth: Truth, n_styles: int) -> _Samplers:
        return cls(
            leaf=_RowSampler(truth.leaf_preference),
            style=_RowSampler(truth.style_preference),
            item=_GroupSampler(
                truth.item_leaf * n_styles + truth.item_style,
                truth.item_popularity,
                len(truth.leaves) * n_styles,
            ),
        )


def _simulate(
    config: SynthConfig,
    truth: Truth,
    parts: dict,
    catalog: pl.DataFrame,
    samplers: _Samplers,
    rank: np.ndarray,
    first_session: int,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """Events of one chunk of sessions as compact numpy columns.

    Sessions are numbered ``first_session + i``; ``sess`` is each event's originating session
    and ``rank`` that session's place in a random order (used to cut the event budget, so
    the cut favours no customer).
    """
    n_sessions = len(rank)
    n_styles = config.n_styles
    start_s = int(config.start.timestamp())
    end_s = start_s + config.days * 86_400
    created_s = parts["created_s"]
    in_stock = catalog["in_stock"].to_numpy()
    repeatable = catalog["repeatable"].to_numpy()
    price = catalog["price"].to_numpy()
    leaf_sampler, style_sampler, item_sampler = samplers.leaf, samplers.style, samplers.item

    # sessions: customer, channel, day/time, focus leaf (with category seasonality);
    # ordered by customer within the chunk (cache-friendly sampling)
    cust = np.searchsorted(np.cumsum(truth.customer_activity), rng.random(n_sessions) * 0.999999)
    cust = np.sort(cust).astype(np.int32)
    shares = np.asarray(config.channel_shares) / sum(config.channel_shares)
    channel = rng.choice(len(CHANNELS), n_sessions, p=shares).astype(np.int8)
    day = rng.choice(config.days, n_sessions, p=_day_weights(config))
    hour = rng.choice(24, n_sessions, p=HOUR_FACTOR / HOUR_FACTOR.sum())
    t0 = start_s + day * 86_400 + hour * 3600 + rng.integers(0, 3600, n_sessions)
    month = np.array(
        [(config.start + timedelta(days=int(d))).month - 1 for d in range(config.days)]
    )
    season = np.ones((len(parts["tops"]), 12))
    for t, top in enumerate(parts["tops"]):
        if top in CATEGORY_SEASONS:
            season[t] = CATEGORY_SEASONS[top]
    focus = leaf_sampler.sample(cust, rng)
    for _ in range(4):  # rejection: out-of-season categories are chosen less often
        accept = rng.random(n_sessions) < season[parts["leaf_top"][focus], month[day]]
        redo = np.flatnonzero(~accept)
        if not len(redo):
            break
        focus[redo] = leaf_sampler.sample(cust[redo], rng)

    # slots: the items a session touches (views; store purchases; the emailed item)
    is_email, is_store = channel == EMAIL, channel == STORE
    clicked = is_email & (rng.random(n_sessions) < config.email_click_rate)
    n_views = rng.geometric(1.0 / config.mean_views, n_sessions)
    n_slots = np.where(is_store, rng.geometric(1 / 1.6, n_sessions), n_views)
    n_slots = np.where(is_email & ~clicked, 1, n_slots)
    slot_sess = np.repeat(np.arange(n_sessions), n_slots)
    slot_pos = _segment_positions(n_slots)
    slot_cust = cust[slot_sess]
    slot_leaf = focus[slot_sess].copy()
    t_slot_base = t0[slot_sess]

    def draw_items(idx: np.ndarray) -> np.ndarray:
        leaf = slot_leaf[idx].copy()
        stray = rng.random(len(idx)) >= config.focus_share
        leaf[stray] = leaf_sampler.sample(slot_cust[idx][stray], rng)
        style = style_sampler.sample(slot_cust[idx], rng)
        return item_sampler.sample(leaf * n_styles + style, rng)

    # times: email clicks come a while after the open; views follow each other by seconds
    click_delay = np.where(clicked, 60 + rng.exponential(3 * 3600, n_sessions), 0).astype(np.int64)
    gaps = (5 + rng.exponential(50, len(slot_sess))).astype(np.int64)
    gaps[slot_pos == 0] = 0
    csum = np.cumsum(gaps)
    first_of_session = np.repeat(np.cumsum(n_slots) - n_slots, n_slots)
    t_slot = t_slot_base + click_delay[slot_sess] + csum - csum[first_of_session]
    item = draw_items(np.arange(len(slot_sess)))
    for _ in range(4):  # items cannot be seen before they exist
        early = np.flatnonzero(created_s[item] > t_slot)
        if not len(early):
            break
        item[early] = draw_items(early)
    valid = created_s[item] <= t_slot

    out: dict[str, list[np.ndarray]] = {
        k: [] for k in ("sess", "cust", "item", "type", "t", "qty", "chan")
    }

    def emit(mask: np.ndarray, etype: int, t: np.ndarray, qty: np.ndarray | float) -> None:
        out["sess"].append(slot_sess[mask])
        out["cust"].append(slot_cust[mask])
        out["item"].append(item[mask])
        out["type"].append(np.full(int(mask.sum()), etype, dtype=np.int8))
        out["t"].append(t[mask])
        out["qty"].append(np.broadcast_to(qty, mask.shape)[mask].astype(np.float64))
        out["chan"].append(channel[slot_sess][mask])

    first = slot_pos == 0
    email_slot = is_email[slot_sess]
    store_slot = is_store[slot_sess]
    browse = ~store_slot & ~(email_slot & ~clicked[slot_sess])
    nan = np.nan
    opened = first & email_slot & (created_s[item] <= t_slot_base)
    emit(opened, EMAIL_OPEN, t_slot_base, nan)
    emit(opened & clicked[slot_sess], EMAIL_CLICK, t_slot - 1, nan)
    emit(browse & valid, VIEW, t_slot, nan)
    p_cart = config.view_to_cart * np.where(in_stock[item], 1.0, 0.3)
    carted = browse & valid & (rng.random(len(item)) < p_cart)
    t_cart = t_slot + 2 + rng.exponential(20, len(item)).astype(np.int64)
    emit(carted, CART, t_cart, 1.0)
    bought = carted & (rng.random(len(item)) < config.cart_to_purchase)
    session_end = np.maximum.reduceat(t_cart, np.cumsum(n_slots) - n_slots)
    t_checkout = session_end[slot_sess] + 30 + rng.exponential(120, len(item)).astype(np.int64)
    qty = np.where(
        repeatable[item], 1 + rng.poisson(0.6, len(item)), 1 + (rng.random(len(item)) < 0.05)
    )
    emit(bought, PURCHASE, t_checkout, qty)
    removed = carted & ~bought & (rng.random(len(item)) < config.cart_removal)
    emit(removed, REMOVE, t_cart + 5 + rng.exponential(90, len(item)).astype(np.int64), 1.0)
    store_buy = store_slot & valid
    emit(store_buy, PURCHASE, t_slot, qty)

    # buy again: repeatable purchases recur every few weeks until the window ends
    rep = np.flatnonzero((bought | store_buy) & repeatable[item])
    interval = 14 + (truth.item_leaf[item[rep]] % 5) * 9  # 14..50 days by leaf
    remaining = (end_s - t_checkout[rep]) / 86_400
    habit = rng.random(len(rep)) < config.repeat_rate  # the customer keeps buying it
    n_rep = np.where(habit, rng.geometric(1.0 - config.repeat_continue, len(rep)), 0)
    n_rep = np.minimum(n_rep, np.maximum(remaining // interval, 0).astype(np.int64))
    src = np.repeat(rep, n_rep)
    k = _segment_positions(n_rep) + 1
    jitter = rng.lognormal(0.0, 0.25, len(src))
    t_rep = t_checkout[src] + (np.repeat(interval, n_rep) * 86_400 * k * jitter).astype(np.int64)
    keep = t_rep < end_s
    src, t_rep = src[keep], t_rep[keep]
    out["sess"].append(slot_sess[src])
    out["cust"].append(slot_cust[src])
    out["item"].append(item[src])
    out["type"].append(np.full(len(src), PURCHASE, dtype=np.int8))
    out["t"].append(t_rep)
    out["qty"].append(qty[src].astype(np.float64))
    out["chan"].append(rng.choice([WEB, APP, STORE], len(src), p=[0.3, 0.5, 0.2]).astype(np.int8))
    cols = {k: np.concatenate(v) for k, v in out.items()}
    cols["rank"] = rank[cols["sess"]].astype(np.int32)
    cols["sess"] = cols["sess"].astype(np.int64) + first_session
    # repeat purchases form their own sessions: number them after the browsing sessions
    n_base = sum(len(a) for a in out["sess"][:-1])
    session_no = cols["sess"].astype(np.int64) * 64
    session_no[n_base:] += 1 + k[keep]
    cols["session"] = session_no
    discount = np.where(
        rng.random(len(cols["item"])) < 0.12, rng.uniform(0.7, 0.95, len(cols["item"])), 1.0
    )
    cols["price"] = np.round(price[cols["item"]] * discount, 2)
    del cols["sess"]  # ``session`` and ``rank`` say everything needed from here on
    compact = {
        "cust": np.int32,
        "item": np.int32,
        "type": np.int8,
        "chan": np.int8,
        "qty": np.float32,
    }
    return {k: v.astype(compact.get(k, v.dtype), copy=False) for k, v in cols.items()}


def _dedup_and_cut(
    cols: dict[str, np.ndarray], target: int, n_items: int
) -> tuple[dict[str, np.ndarray] | None, int]:
    """Drop same-second repeats of an event, then keep ``target`` events: whole sessions in
    random ``rank`` order plus the beginning of the last one; returned in time order.

    Returns (None, available) when the simulation produced fewer than ``target`` events.
    """
    t = cols["t"]
    t_min, span = int(t.min()), int(t.max() - t.min()) + 1
    pair = (cols["cust"].astype(np.int64) * n_items + cols["item"]) * 8 + cols["type"]
    if int(pair.max()) < (2**62) // span:  # one int64 key: fast
        first = pl.Series(pair * span + (t - t_min)).is_first_distinct().to_numpy()
    else:
        frame = pl.DataFrame({"p": pair, "t": t})
        first = frame.select(pl.struct("p", "t").is_first_distinct()).to_series().to_numpy()
    idx = np.flatnonzero(first)
    rank = cols["rank"][idx]
    cum = np.cumsum(np.bincount(rank))
    if cum[-1] < target:
        return None, int(cum[-1])
    full = int(np.searchsorted(cum, target, side="right"))  # ranks < full are kept whole
    keep = rank < full
    need = target - (int(cum[full - 1]) if full else 0)
    if need:
        last = np.flatnonzero(rank == full)
        keep[last[np.argsort(t[idx[last]], kind="stable")[:need]]] = True
    rows = idx[keep]
    rows = rows[np.argsort(t[rows], kind="stable")]
    return {k: v[rows] for k, v in cols.items()}, int(cum[-1])


def generate(config: SynthConfig) -> Shop:
    """A shop from a config; equal configs (seed included) give identical shops."""
    rng = np.random.default_rng(config.seed)
    catalog, parts = _build_catalog(config, rng)
    truth, customers = _build_tastes(config, parts, rng)
    target = config.n_events - n_dirty_rows(config.n_events, config.dirty_fraction)
    samplers = _Samplers.of(truth, config.n_styles)
    n_sessions = int(target / _expected_events_per_session(config) * 1.25) + 20
    for attempt in range(8):
        ranks = np.random.default_rng([config.seed, 1, attempt]).permutation(n_sessions)
        chunks = []
        for first in range(0, n_sessions, SESSION_CHUNK):
            chunk_rng = np.random.default_rng([config.seed, 2, attempt, first])
            chunk_ranks = ranks[first : first + SESSION_CHUNK]
            chunks.append(
                _simulate(config, truth, parts, catalog, samplers, chunk_ranks, first, chunk_rng)
            )
        raw = {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}
        del chunks
        cols, available = _dedup_and_cut(raw, target, config.n_items)
        del raw
        if cols is not None:
            break
        n_sessions = int(n_sessions * target / max(available, 1) * 1.1) + 20
    else:  # pragma: no cover - the estimate is off by far more than expected
        raise RuntimeError("synthetic shop: could not reach the requested number of events")
    frame = pl.DataFrame(cols)
    events = frame.select(
        customer_id=customers["customer_id"].gather(frame["cust"]),
        item_id=catalog["item_id"].gather(frame["item"]),
        event_type=pl.Series(EVENT_TYPES).gather(frame["type"]),
        timestamp=(pl.col("t") * 1_000_000).cast(pl.Datetime("us", "UTC")),
        quantity=pl.col("qty").cast(pl.Float64).fill_nan(None),
        price=pl.col("price"),
        channel=pl.Series(CHANNELS).gather(frame["chan"]),
        session_id=pl.lit("s") + pl.col("session").cast(pl.String),
        value=pl.lit(None, dtype=pl.Float64),
    )
    stats = {
        "sessions": int(np.unique(cols["session"]).size),
        "events": events.height,
        "by_type": {EVENT_TYPES[k]: int(v) for k, v in enumerate(np.bincount(cols["type"]))},
        "customers_active": int(np.unique(cols["cust"]).size),
        "items_active": int(np.unique(cols["item"]).size),
    }
    return Shop(config, events, catalog, customers, truth, stats)


def n_dirty_rows(n_rows: int, dirty_fraction: float) -> int:
    """Dirty rows among ``n_rows`` written rows."""
    return int(round(n_rows * dirty_fraction))


# ---- layouts and dirty rows ----------------------------------------------------------------

RR_EVENTS = {
    "view": "view",
    "email_click": "view",
    "add_to_cart": "addtocart",
    "purchase": "transaction",
}
"""canonical event type -> RetailRocket ``event``; other types are dropped."""

_BAD_TIMESTAMPS = {
    "canonical": ("not-a-date", "2024-13-45T25:61:00Z", "yesterday", "20240x01T10:00:00Z"),
    "retailrocket": ("not-a-date", "1.7e12x", "17000000000000000000000", "ts"),
}
_UNKNOWN_TYPES = {
    "canonical": ("wishlist_add", "page_ping", "share", "compare"),
    "retailrocket": ("wishlist", "click", "share", "compare"),
}
FUTURE = datetime(2099, 6, 1, tzinfo=UTC)


def _clean_rows(events: pl.DataFrame, layout: Layout) -> tuple[pl.DataFrame, dict[str, int]]:
    """Clean events as the layout's raw string columns (nulls stay null)."""
    if layout == "canonical":
        raw = events.select(
            pl.col("customer_id"),
            pl.col("item_id"),
            pl.col("event_type"),
            pl.col("timestamp").dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
            pl.col("quantity").cast(pl.Int64).cast(pl.String),
            pl.col("price").round(2).cast(pl.String),
            pl.col("channel"),
            pl.col("session_id"),
            pl.col("value").cast(pl.String),
        )
        return raw, {}
    if layout != "retailrocket":
        raise ValueError(f"unknown layout {layout!r}; choose canonical or retailrocket")
    carried = pl.col("event_type").is_in(list(RR_EVENTS))
    dropped = events.filter(~carried)["event_type"].value_counts()
    is_tx = pl.col("event_type") == "purchase"
    raw = (
        events.lazy()
        .filter(carried)
        .select(
            timestamp=pl.col("timestamp").dt.epoch("ms"),
            visitorid=pl.col("customer_id"),
            event=pl.col("event_type").replace_strict(RR_EVENTS),
            itemid=pl.col("item_id"),
            transactionid=pl.when(is_tx).then(pl.col("session_id").str.strip_prefix("s")),
        )
        .unique(maintain_order=True)  # e.g. an email click and a view in the same second
        .with_columns(pl.col("timestamp").cast(pl.String))
        .collect()
    )
    return raw, dict(dropped.iter_rows())


def _dirty_kinds(layout: Layout) -> tuple[tuple[str, ...], np.ndarray]:
    kinds, shares = list(DIRTY_KINDS), np.asarray(DIRTY_SHARES)
    if layout == "retailrocket":  # no quantity column
        keep = [k != "non_positive_quantity" for k in kinds]
        kinds, shares = [k for k, ok in zip(kinds, keep, strict=True) if ok], shares[keep]
    return tuple(kinds), shares / shares.sum()


def _make_dirty(
    clean: pl.DataFrame, layout: Layout, n_dirty: int, rng: np.random.Generator
) -> pl.DataFrame:
    """``n_dirty`` rows derived from clean rows, each breaking exactly one rule, plus
    ``kind`` and ``src`` (the clean row it came from)."""
    kinds, shares = _dirty_kinds(layout)
    counts = rng.multinomial(n_dirty, shares)
    cols = dict(
        zip(
            ("customer", "item", "type", "ts"),
            ("customer_id", "item_id", "event_type", "timestamp")
            if layout == "canonical"
            else ("visitorid", "itemid", "event", "timestamp"),
            strict=True,
        )
    )
    purchases = (
        np.flatnonzero((clean["event_type"] == "purchase").to_numpy())
        if layout == "canonical"
        else np.empty(0, dtype=np.int64)
    )
    parts = []
    for kind, count in zip(kinds, counts, strict=True):
        if count == 0:
            continue
        pool = purchases if kind == "non_positive_quantity" else np.arange(clean.height)
        src = rng.choice(pool, size=min(int(count), len(pool)), replace=False)
        rows = clean[src].with_columns(kind=pl.lit(kind), src=pl.Series(src, dtype=pl.Int64))
        n = rows.height
        pick = pl.Series(rng.integers(0, 4, n))
        if kind == "unparseable_timestamp":
            rows = rows.with_columns(pl.Series(cols["ts"], _BAD_TIMESTAMPS[layout]).gather(pick))
        elif kind == "future_timestamp":
            future = FUTURE + timedelta(seconds=int(rng.integers(0, 10**7)))
            value = (
                future.strftime("%Y-%m-%dT%H:%M:%SZ")
                if layout == "canonical"
                else str(int(future.timestamp()) * 1000)
            )
            rows = rows.with_columns(pl.lit(value).alias(cols["ts"]))
        elif kind == "unknown_event_type":
            rows = rows.with_columns(pl.Series(cols["type"], _UNKNOWN_TYPES[layout]).gather(pick))
        elif kind == "missing_customer_id":
            rows = rows.with_columns(pl.lit(None, dtype=pl.String).alias(cols["customer"]))
        elif kind == "missing_item_id":
            rows = rows.with_columns(pl.lit(None, dtype=pl.String).alias(cols["item"]))
        elif kind == "non_positive_quantity":
            rows = rows.with_columns(quantity=pl.Series(["0", "-1", "-2", "0"]).gather(pick))
        parts.append(rows)
    if not parts:
        return clean.head(0).with_columns(kind=pl.lit("", pl.String), src=pl.lit(0, pl.Int64))
    dirty = pl.concat(parts)
    # a broken row must not be a copy of another broken row (it would count as a duplicate)
    data_cols = [c for c in dirty.columns if c not in ("kind", "src")]
    broken = dirty.filter(pl.col("kind") != "duplicate").unique(
        data_cols, keep="first", maintain_order=True
    )
    return pl.concat([dirty.filter(pl.col("kind") == "duplicate"), broken])


def render_events(
    shop: Shop, layout: Layout = "canonical", *, dirty_fraction: float | None = None
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """The shop's events as the layout's raw string rows with dirty rows mixed in.

    Returns the frame and a manifest: row counts, dirty rows by kind, what a validator must
    find (``expected``: kept / duplicates / quarantined by reason) and the event types the
    layout could not carry.
    """
    fraction = shop.config.dirty_fraction if dirty_fraction is None else dirty_fraction
    rng = np.random.default_rng([shop.config.seed, 2, 0 if layout == "canonical" else 1])
    clean, dropped = _clean_rows(shop.events, layout)
    n_dirty = int(round(clean.height * fraction / (1.0 - fraction)))
    dirty = _make_dirty(clean, layout, n_dirty, rng)
    # place rows: clean rows in time order; duplicates right after their original or
    # anywhere later; broken rows anywhere
    n = clean.height
    is_dup = (dirty["kind"] == "duplicate").to_numpy()
    src = dirty["src"].to_numpy()
    later = src + rng.integers(0, np.maximum(n - src, 1))
    pos = np.where(
        is_dup, np.where(rng.random(len(src)) < 0.5, src, later), rng.integers(0, n, len(src))
    )
    order_key = np.concatenate([np.arange(n) * 2, pos * 2 + 1])
    order = np.argsort(order_key, kind="stable")
    rows = pl.concat([clean, dirty.drop("kind", "src")], rechunk=False).gather(order)
    by_kind = {k: int(v) for k, v in dirty["kind"].value_counts().iter_rows()}
    quarantined = {k: v for k, v in by_kind.items() if k != "duplicate"}
    manifest = {
        "layout": layout,
        "seed": shop.config.seed,
        "rows": rows.height,
        "clean_rows": n,
        "dirty_rows": dirty.height,
        "dirty_fraction": dirty.height / rows.height if rows.height else 0.0,
        "dirty": by_kind,
        "expected": {
            "rows_in": rows.height,
            "kept": n,
            "duplicates": by_kind.get("duplicate", 0),
            "quarantined": sum(quarantined.values()),
            "by_reason": quarantined,
        },
        "dropped_event_types": dropped,
        "config": shop.config.to_dict(),
    }
    return rows, manifest


def _catalog_rows(catalog: pl.DataFrame) -> pl.DataFrame:
    return catalog.with_columns(
        pl.col("created_at").dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
        pl.col("in_stock").cast(pl.String),
        pl.col("repeatable").cast(pl.String),
    )


def write_shop(
    shop: Shop,
    out_dir: str | Path,
    layout: Layout = "canonical",
    fmt: Format = "csv",
) -> dict[str, Path]:
    """Write events (with dirty rows), catalog, customers and manifest.json into ``out_dir``.

    Returns the paths under the keys ``events``, ``catalog``, ``customers``, ``manifest``.
    Catalog and customers are always in the canonical layout (their ids match the events').
    """
    if fmt not in ("csv", "parquet"):
        raise ValueError(f"fmt must be csv or parquet, not {fmt!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    events, manifest = render_events(shop, layout)
    paths = {
        "events": out / f"events.{fmt}",
        "catalog": out / f"catalog.{fmt}",
        "customers": out / f"customers.{fmt}",
        "manifest": out / "manifest.json",
    }
    frames = {
        "events": events,
        "catalog": _catalog_rows(shop.catalog),
        "customers": shop.customers,
    }
    for name, frame in frames.items():
        if fmt == "csv":
            frame.write_csv(paths[name])
        else:
            frame.write_parquet(paths[name])
    manifest["format"] = fmt
    manifest["files"] = {k: v.name for k, v in paths.items()}
    paths["manifest"].write_text(json.dumps(manifest, indent=2) + "\n")
    return paths
