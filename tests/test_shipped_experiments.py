"""Every shipped experiment file ranks better than popularity on the same split.

Shop files run on two synthetic shops (in memory, nothing written): the ``small`` preset
they ship with (many items, sparse, strong personal tastes) and the ``grocery`` preset (170
items, dense, mostly purchases, strong popularity). MovieLens files run on
ml-latest-small (``realdata``: read in place).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from features.synth import SynthConfig, generate
from recsys.evaluation.protocol import evaluate
from recsys.experiment import (
    Dataset,
    ExperimentSpec,
    compare_with_baseline,
    fit_on_fold,
    load_dataset,
    protocol_data,
)

EXPERIMENTS = Path(__file__).resolve().parent.parent / "experiments"
SHOP_FILES = sorted(EXPERIMENTS.glob("shop-*.toml"))
ML_FILES = sorted(EXPERIMENTS.glob("ml-*.toml"))


@pytest.fixture(scope="module")
def shops() -> dict[str, Dataset]:
    out = {}
    for preset in ("small", "grocery"):
        shop = generate(SynthConfig.preset(preset, seed=0))
        out[preset] = Dataset(events=shop.events, catalog=shop.catalog, customers=shop.customers)
    return out


def lift(spec: ExperimentSpec, dataset: Dataset) -> tuple[float, float]:
    """(model test NDCG@K, popularity test NDCG@K) on the experiment's protocol split."""
    data = protocol_data(spec, dataset)
    result = evaluate(fit_on_fold(spec, data.test), data.test, data.config)
    comparison = compare_with_baseline(spec, data, result)
    return comparison.model_ndcg, comparison.baseline_ndcg


def shop_cases() -> list[object]:
    cases: list[object] = []
    for preset in ("small", "grocery"):
        for path in SHOP_FILES:
            cases.append(pytest.param(preset, path, id=f"{preset}-{path.stem}"))
    return cases


@pytest.mark.parametrize(("preset", "path"), shop_cases())
def test_shop_experiment_not_below_popularity(
    shops: dict[str, Dataset], preset: str, path: Path
) -> None:
    model, popularity = lift(ExperimentSpec.load(path), shops[preset])
    assert model >= popularity > 0, f"{path.name} on {preset}: {model:.4f} < {popularity:.4f}"


@pytest.mark.realdata
@pytest.mark.slow  # ~2 min on a busy 2-core machine (EASE, LightFM, the blend)
@pytest.mark.parametrize("path", ML_FILES, ids=[p.stem for p in ML_FILES])
def test_movielens_experiment_not_below_popularity(ml_small_ratings: Path, path: Path) -> None:
    spec = ExperimentSpec.load(path)
    spec.raw["data"]["path"] = str(ml_small_ratings)
    model, popularity = lift(spec, load_dataset(spec, write=False))
    assert model >= popularity > 0, f"{path.name}: {model:.4f} < {popularity:.4f}"
