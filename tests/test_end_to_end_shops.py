"""A real shop's own export to served recommendations, exactly as the README shows it.

Each walk-through of the README's "Using it on a shop's data" runs here step by step, each
step its own ``recsys`` process in a fresh folder, on the embedded Redis default (no
``REDIS_URL``) and the default local MLflow store: ingest -> build -> train -> promote ->
publish -> serve, then the storefront's questions. The exports are the hand-made ones in
``tests/fixtures/shops`` (see its README): order lines, a clickstream, invoice lines.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from readme_steps import StepRunner, walkthroughs

FIXTURES = Path(__file__).parent / "fixtures" / "shops"
EXPORTS = {
    "orders.csv": "grocery_orders.csv",
    "clicks.csv": "clickstream.csv",
    "invoices.csv": "invoices.csv",
}

# The two taste groups of each fixture (tests/fixtures/shops/README.md): a customer of one
# group should mostly be recommended the items of that group.
GROCERY_A = {
    "whole milk",
    "rolls/buns",
    "butter milk",
    "crème fraîche",
    "müsli (bio)",
    "brown bread",
    "jam & honey",
}
CLICKS_A = {"SKU 1001/blue", "SKU 1001/red", "商品123", "sku,1", "Größe-42", "tee (L)"}
INVOICES_A = {"85123A", "71053", "84406B", "22752", "21730"}

pytestmark = pytest.mark.slow


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[StepRunner]:
    """A fresh folder with the exports, and the environment of a new user's shell."""
    exports = tmp_path / "exports"
    exports.mkdir()
    for name, fixture in EXPORTS.items():
        shutil.copy(FIXTURES / fixture, exports / name)
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "MLFLOW_TRACKING_URI")}
    env["RECSYS_REDIS_DIR"] = str(tmp_path / "redis")  # this test's own embedded server
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    steps = StepRunner(tmp_path, env)
    try:
        yield steps
    finally:
        steps.stop()
        steps.recsys(["redis", "stop"])


def _report(folder: Path) -> dict[str, Any]:
    report: dict[str, Any] = json.loads((folder / "report.json").read_text())
    assert report["rows_in"] == report["kept"] + report["quarantined"] + report["duplicates"]
    return report


def _recommended(answer: dict[str, Any]) -> list[str]:
    assert answer["degraded"] is False and answer["version"], answer
    assert answer["items"], answer
    return [item["item_id"] for item in answer["items"]]


def _personal(answers: dict[str, Any]) -> None:
    """Two customers of different taste groups get personal answers, and different ones."""
    homes = [a for path, a in answers.items() if "/recommendations" in path]
    assert len(homes) == 2, list(answers)
    first, second = (_recommended(a) for a in homes)
    assert first != second
    for answer in homes:
        assert any(item["reason_code"] == "for_you" for item in answer["items"]), answer


def _similar_in(answers: dict[str, Any], group: set[str]) -> None:
    """The similar items of an item of one taste group come mostly from that group."""
    (answer,) = [a for path, a in answers.items() if "/similar" in path]
    similar = _recommended(answer)
    assert answer["item_id"] in group and answer["item_id"] not in similar
    assert sum(item in group for item in similar[:3]) >= 2, similar


def test_grocery_order_lines(runner: StepRunner) -> None:
    runner.run(walkthroughs()["grocery"])
    report = _report(runner.workdir / "data" / "grocery")
    assert report["by_reason"] == {"missing_item_id": 1, "missing_customer_id": 1}
    assert report["kept"] == 632 and report["timestamps"]["order"] == "day-first"
    _personal(runner.answers)
    _similar_in(runner.answers, GROCERY_A)


def test_clickstream(runner: StepRunner) -> None:
    runner.run(walkthroughs()["clickstream"])
    report = _report(runner.workdir / "data" / "clicks")
    assert report["by_reason"] == {"unparseable_timestamp": 1}
    assert report["by_event_type"]["wishlist_add"] == 1
    _personal(runner.answers)
    _similar_in(runner.answers, CLICKS_A)


def test_invoice_lines(runner: StepRunner) -> None:
    runner.run(walkthroughs()["invoices"])
    report = _report(runner.workdir / "data" / "invoices")
    # the guest line, the cancellation lines, and the purchases they cancel entirely
    assert report["by_reason"] == {"cancellation": 36, "guest_without_id": 1}
    assert report["timestamps"]["nonexistent_shifted"] == 1
    _personal(runner.answers)
    _similar_in(runner.answers, INVOICES_A)
