"""Settings come from RECSYS_* variables and REDIS_URL; lists are comma-separated or JSON."""

from __future__ import annotations

import os
from dataclasses import fields

import pytest

from serving.rerank import DEFAULT_EVENT_WEIGHTS, RerankConfig
from serving.settings import NOT_SETTINGS, Settings


def test_environment_and_rerank_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/5")
    monkeypatch.setenv("RECSYS_MAX_N", "50")
    monkeypatch.setenv("RECSYS_PROMOTED", "sku-1, sku-2")
    monkeypatch.setenv("RECSYS_DIVERSITY", "mmr")
    settings = Settings()
    assert settings.redis_url == "redis://127.0.0.1:6379/5"
    assert settings.max_n == 50
    config = settings.rerank_config()
    assert config.promoted == ("sku-1", "sku-2") and config.diversity == "mmr"


def test_a_list_of_ids_holding_commas_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECSYS_PROMOTED", '["sku,1", "tropical fruit", "[x]"]')
    assert Settings().rerank_config().promoted == ("sku,1", "tropical fruit", "[x]")
    monkeypatch.setenv("RECSYS_PROMOTED", '["tab\\there"]')
    with pytest.raises(ValueError, match="promoted item id 'tab\\\\there' contains the control"):
        Settings()
    monkeypatch.setenv("RECSYS_PROMOTED", '["sku,1", 2]')
    with pytest.raises(ValueError, match="array of strings"):
        Settings()
    monkeypatch.setenv("RECSYS_PROMOTED", "[oops")
    with pytest.raises(ValueError, match="JSON array"):
        Settings()


def test_invalid_values_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECSYS_MAX_N", "0")
    with pytest.raises(ValueError, match="max_n"):
        Settings()
    monkeypatch.setenv("RECSYS_MAX_N", "10")
    monkeypatch.setenv("RECSYS_DIVERSITY", "random")
    with pytest.raises(ValueError, match="diversity"):
        Settings()


def test_one_worker_per_usable_core_unless_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RECSYS_WORKERS", raising=False)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert Settings().worker_count() == cores
    monkeypatch.setenv("RECSYS_WORKERS", "3")
    assert Settings().worker_count() == 3
    monkeypatch.setenv("RECSYS_WORKERS", "-1")
    with pytest.raises(ValueError, match="workers"):
        Settings()


def test_every_rerank_field_is_a_setting_or_listed(monkeypatch: pytest.MonkeyPatch) -> None:
    """A default lives in RerankConfig only: each of its fields is a setting of the same name
    starting from that default, or is listed in NOT_SETTINGS with the reason."""
    for name in os.environ:
        if name.startswith("RECSYS_"):
            monkeypatch.delenv(name)
    names = {f.name for f in fields(RerankConfig)}
    assert set(NOT_SETTINGS) <= names and all(NOT_SETTINGS.values())
    defaults = RerankConfig()
    for name in sorted(names - set(NOT_SETTINGS)):
        assert name in Settings.model_fields, f"RerankConfig.{name} is neither a setting nor listed"
        assert Settings.model_fields[name].default == getattr(defaults, name), name
    assert Settings().rerank_config() == defaults
    assert Settings().event_weights() == dict(DEFAULT_EVENT_WEIGHTS)


def test_each_rerank_setting_reaches_the_config(monkeypatch: pytest.MonkeyPatch) -> None:
    numbers = [
        f.name
        for f in fields(RerankConfig)
        if f.name not in NOT_SETTINGS and isinstance(getattr(RerankConfig(), f.name), int | float)
    ]
    assert len(numbers) >= 12
    for name in numbers:
        value = 0.5 if name == "mmr_lambda" else 7
        monkeypatch.setenv(f"RECSYS_{name.upper()}", str(value))
        assert getattr(Settings().rerank_config(), name) == value, name
    monkeypatch.setenv("RECSYS_ADD_TO_CART_WEIGHT", "2.5")
    assert Settings().rerank_config().event_weights["add_to_cart"] == 2.5
    monkeypatch.setenv("RECSYS_CART_EXCLUDED_CONTEXTS", "email")
    assert Settings().rerank_config().cart_excluded_contexts == ("email",)
