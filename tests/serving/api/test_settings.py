"""Settings come from RECSYS_* variables and REDIS_URL; lists are comma-separated or JSON."""

from __future__ import annotations

import os

import pytest

from serving.settings import Settings


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
