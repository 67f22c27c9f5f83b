"""Benchmark: model wrappers vs the raw library (ALS fit and batched top-100 recommend).

    python bench/train_speed.py            # table, then one JSON line (the last line)
    python bench/train_speed.py --record   # also append the figures to BENCHMARKS.md

Data: the 5M-event synthetic shop (``features.synth`` preset ``bench``) turned into a
customer x item matrix with ``features.matrices.build_matrices`` (default interaction config);
the matrix is built once and cached under ``bench/out/train-speed/`` while the config is
unchanged. On that matrix, with the same hyper-parameters and threads:

- fit: ``recsys.models.ALS.fit`` vs ``implicit.cpu.als.AlternatingLeastSquares.fit``;
- recommend: top-100 for every customer, excluding their history, through our
  ``recommend(rows, 100, exclude=matrix)`` vs implicit's own batched
  ``recommend(userids, user_items, N=100)`` on the same factors.

Each is measured 3 times, ours and raw interleaved, and the medians compared in the same run.
Bars (issue 3): fit_ratio (ours / raw seconds) <= 1.2, recommend_ratio (ours / raw
customers per second) >= 0.9.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

# bench/record.py: the script's directory is on sys.path
from record import add_row, machine, now  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

OUT = REPO / "bench" / "out" / "train-speed"
RUNS = 3
N = 100
PARAMS: dict[str, Any] = {
    "factors": 64,
    "regularization": 0.05,
    "alpha": 1.0,
    "iterations": 15,
    "num_threads": 0,
    "random_state": 0,
}
BAR_FIT_RATIO = 1.2
BAR_RECOMMEND_RATIO = 0.9


def prepare() -> Any:
    """The benchmark matrix (built once, cached under bench/out/train-speed/)."""
    from features.matrices import Matrices, build_matrices
    from features.synth import SynthConfig, generate

    config = SynthConfig.preset("bench")
    stamp = OUT / "config.json"
    wanted = json.dumps(config.to_dict(), sort_keys=True, default=str)
    matrices_dir = OUT / "matrices"
    if stamp.exists() and stamp.read_text() == wanted and matrices_dir.exists():
        return Matrices.load(matrices_dir)
    print(f"generating {config.n_events:,} events and the matrix into {OUT} (cached)")
    start = time.perf_counter()
    matrices = build_matrices(generate(config).events)
    OUT.mkdir(parents=True, exist_ok=True)
    matrices.save(matrices_dir)
    stamp.write_text(wanted)
    print(f"built in {time.perf_counter() - start:.1f}s")
    return matrices


def timed(func: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    out = func()
    return time.perf_counter() - start, out


def main(record: bool) -> dict[str, Any]:
    from implicit.cpu.als import AlternatingLeastSquares
    from rich.console import Console
    from rich.table import Table

    from recsys.models import build

    matrix = prepare().interactions
    n_customers, n_items = matrix.shape
    rows = np.arange(n_customers)
    library_params = {k: v for k, v in PARAMS.items()}

    ours_fit, raw_fit, ours_rec, raw_rec = [], [], [], []
    ours = raw = None
    for _ in range(RUNS):
        ours = build("als", **PARAMS)
        seconds, _ = timed(lambda m=ours: m.fit(matrix))
        ours_fit.append(seconds)
        raw = AlternatingLeastSquares(**library_params)
        seconds, _ = timed(lambda m=raw: m.fit(matrix, show_progress=False))
        raw_fit.append(seconds)
    assert ours is not None and raw is not None
    for _ in range(RUNS):
        seconds, (ours_items, _) = timed(lambda: ours.recommend(rows, N, exclude=matrix))
        ours_rec.append(seconds)
        seconds, (raw_items, _) = timed(lambda: raw.recommend(rows, matrix, N=N))
        raw_rec.append(seconds)
    # same factors -> same lists (checks we measure equivalent work)
    raw_same, _ = ours.model_.recommend(rows[:1000], matrix[:1000], N=N)  # type: ignore[attr-defined]
    agree = bool(np.array_equal(ours_items[:1000], raw_same))

    fit_ours, fit_raw = statistics.median(ours_fit), statistics.median(raw_fit)
    rec_ours, rec_raw = statistics.median(ours_rec), statistics.median(raw_rec)
    fit_ratio = fit_ours / fit_raw
    recommend_ratio = (n_customers / rec_ours) / (n_customers / rec_raw)

    table = Table(
        title=f"ALS speed: {n_customers:,} x {n_items:,} ({matrix.nnz:,} nnz), "
        f"{os.cpu_count()} cores, factors={PARAMS['factors']}, iterations={PARAMS['iterations']}"
    )
    for col in ("step", "runs (s)", "median s", "customers/s", "ratio"):
        table.add_column(col, justify="right")
    table.add_row("fit recsys", " ".join(f"{s:.2f}" for s in ours_fit), f"{fit_ours:.2f}", "", "")
    table.add_row(
        "fit implicit",
        " ".join(f"{s:.2f}" for s in raw_fit),
        f"{fit_raw:.2f}",
        "",
        f"{fit_ratio:.3f}",
    )
    table.add_row(
        f"top-{N} recsys",
        " ".join(f"{s:.2f}" for s in ours_rec),
        f"{rec_ours:.2f}",
        f"{n_customers / rec_ours:,.0f}",
        "",
    )
    table.add_row(
        f"top-{N} implicit",
        " ".join(f"{s:.2f}" for s in raw_rec),
        f"{rec_raw:.2f}",
        f"{n_customers / rec_raw:,.0f}",
        f"{recommend_ratio:.3f}",
    )
    console = Console()
    console.print(table)
    ok = fit_ratio <= BAR_FIT_RATIO and recommend_ratio >= BAR_RECOMMEND_RATIO and agree
    console.print(
        f"same lists as implicit on the same factors: {agree}; bars: fit_ratio <= "
        f"{BAR_FIT_RATIO}, recommend_ratio >= {BAR_RECOMMEND_RATIO}: "
        + ("[green]met[/]" if ok else "[red]NOT met[/]")
    )
    result = {
        "benchmark": "train_speed",
        "shape": [n_customers, n_items],
        "nnz": int(matrix.nnz),
        "fit_ratio": round(fit_ratio, 3),
        "recommend_ratio": round(recommend_ratio, 3),
        "fit_s": {"recsys": round(fit_ours, 3), "implicit": round(fit_raw, 3)},
        "recommend_customers_per_s": {
            "recsys": round(n_customers / rec_ours),
            "implicit": round(n_customers / rec_raw),
        },
        "same_lists": agree,
        "runs": RUNS,
        "bars_met": ok,
    }
    if record:
        append_record(result)
    print(json.dumps(result))
    return result


COLUMNS = ["date (UTC)", "machine", "matrix", "fit_ratio", "recommend_ratio", "bars"]


def append_record(result: dict[str, Any]) -> None:
    """One row under ``## train_speed`` in BENCHMARKS.md."""
    rate = result["recommend_customers_per_s"]
    missed = [
        name
        for name, ok in (
            ("fit_ratio", result["fit_ratio"] <= BAR_FIT_RATIO),
            ("recommend_ratio", result["recommend_ratio"] >= BAR_RECOMMEND_RATIO),
            ("same lists", result["same_lists"]),
        )
        if not ok
    ]
    cells = [
        now(),
        machine(),
        f"{result['shape'][0]:,} x {result['shape'][1]:,} ({result['nnz']:,} nnz)",
        f"{result['fit_ratio']} (ALS {result['fit_s']['recsys']} s vs "
        f"{result['fit_s']['implicit']} s)",
        f"{result['recommend_ratio']} ({rate['recsys']:,} vs {rate['implicit']:,} "
        f"customers/s, top-{N})",
        f"NOT met ({', '.join(missed)})" if missed else "met",
    ]
    add_row("train_speed", COLUMNS, cells)


if __name__ == "__main__":
    args = sys.argv[1:]
    unknown = [a for a in args if a != "--record"]
    if unknown:
        sys.exit(f"usage: python bench/train_speed.py [--record] (unknown: {unknown})")
    main(record="--record" in args)
