"""What persistence costs publishing on the embedded Redis (``serving.connection``).

    python bench/publish_persistence.py                     # 200,000 customers
    python bench/publish_persistence.py --customers 50000   # quicker
    python bench/publish_persistence.py --record            # also a row in BENCHMARKS.md

For each mode, a fresh embedded server in a temporary data directory (started exactly as every
``recsys`` command starts it) gets ``recsys.publish.publish_synthetic`` (100 candidates per
customer, 100k items, 50 similar items per item; the same as ``bench/serve.py``):

- ``off``: ``CONFIG SET appendonly no`` (the embedded server before it persisted: ``save ""``);
- ``everysec``: AOF, fsync once a second;
- ``always``: AOF, fsync before each reply (the shipped default).

Prints ``customers/s`` per mode (encode + write time, as ``PublishReport.customers_per_s``),
the append-only file's size, and one JSON line last.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from record import add_row, machine, now  # bench/record.py: the script's directory is on sys.path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

N_CUSTOMERS = 200_000
N_ITEMS = 100_000
N_CANDIDATES = 100
MODES = ("off", "no", "everysec", "always")


def run(mode: str, n_customers: int) -> dict[str, Any]:
    from recsys.publish import publish_synthetic
    from serving.connection import connect, embedded_url, stop_embedded
    from serving.store import Store

    data_dir = Path(tempfile.mkdtemp(prefix="recsys-bench-aof-"))
    try:
        client = connect(embedded_url(data_dir))
        if mode == "off":
            client.config_set("appendonly", "no")
        else:
            client.config_set("appendfsync", mode)
        report = publish_synthetic(
            Store(client, prefix="bench"),
            n_customers=n_customers,
            n_items=N_ITEMS,
            n_candidates=N_CANDIDATES,
            version="bench1",
        )
        aof = data_dir / "appendonly.aof"
        result = {
            "mode": mode,
            "customers_per_s": round(report.customers_per_s),
            "aof_mb": round(aof.stat().st_size / 2**20, 1) if aof.exists() else 0.0,
        }
        client.close()
    finally:
        stop_embedded(data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)
    print(f"{mode:>9}: {result['customers_per_s']:>9,} customers/s, AOF {result['aof_mb']} MiB")
    return result


COLUMNS = ["date (UTC)", "machine", "customers", "customers/s: off / no / everysec / always"]


def main(record: bool, n_customers: int) -> dict[str, Any]:
    print(f"publishing {n_customers:,} customers x {N_CANDIDATES} candidates per mode ...")
    results = {r["mode"]: r for r in (run(mode, n_customers) for mode in MODES)}
    summary = {"customers": n_customers, **{m: results[m]["customers_per_s"] for m in MODES}}
    if record:
        rates = " / ".join(f"{results[m]['customers_per_s']:,}" for m in MODES)
        add_row("publish persistence", COLUMNS, [now(), machine(), f"{n_customers:,}", rates])
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    args = sys.argv[1:]
    n = int(args[args.index("--customers") + 1]) if "--customers" in args else N_CUSTOMERS
    unknown = [a for a in args if a not in {"--record", "--customers", str(n)}]
    if unknown:
        sys.exit(
            f"usage: python bench/publish_persistence.py [--record] [--customers N] ({unknown})"
        )
    main("--record" in args, n)
