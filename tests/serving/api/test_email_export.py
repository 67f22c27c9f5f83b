"""``recsys email-export``: a segment file in, CSV or JSON lines out, capping recorded."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from api_helpers import publish
from typer.testing import CliRunner

from recsys.cli import app
from serving.store import Store


def run(args: list[str], redis_url: str, prefix: str, tmp_path: Path) -> str:
    env = {
        "REDIS_URL": redis_url,
        "RECSYS_REDIS_PREFIX": prefix,
        "RECSYS_FALLBACK_PATH": str(tmp_path / "fallback.json"),
    }
    result = CliRunner().invoke(app, ["email-export", *args], env=env)
    assert result.exit_code == 0, result.output
    return result.output


def test_csv_and_jsonl_with_recording(
    store: Store, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    publish(store, "v1")
    segment = tmp_path / "segment.csv"
    segment.write_text('customer_id\nc1\nc2\nbad\tid\nc1\nnobody\n"new, ""quoted"" Größe"\n')
    out = tmp_path / "out.csv"
    args = [str(segment), "--out", str(out), "--n", "3", "--batch", "2", "--record"]
    log = run(args, redis_url, redis_prefix, tmp_path)
    assert "4 customers exported" in log and "1 invalid" in log
    assert "control character U+0009" in log
    rows = list(csv.DictReader(out.open(encoding="utf-8", newline="")))
    odd = 'new, "quoted" Größe'  # a comma and quotes inside: read and written as CSV quotes
    assert [r["customer_id"] for r in rows] == ["c1"] * 3 + ["c2"] * 3 + ["nobody"] * 3 + [odd] * 3
    assert {r["version"] for r in rows} == {"v1"} and {r["degraded"] for r in rows} == {"False"}
    first = {r["item_id"] for r in rows if r["customer_id"] == "c1"}

    out2 = tmp_path / "out.jsonl"
    run(
        [str(segment), "-o", str(out2), "--format", "jsonl", "--n", "3"],
        redis_url,
        redis_prefix,
        tmp_path,
    )
    lines = [json.loads(x) for x in out2.read_text().splitlines()]
    assert [x["customer_id"] for x in lines] == ["c1", "c2", "nobody", odd]
    second = {i["item_id"] for i in lines[0]["items"]}
    assert len(second) == 3 and not first & second  # capped by the recorded sends
