"""CLI command: ``recsys demo`` — the main job end to end, as a user would run it.

synth -> ingest -> build -> train (MLflow) -> promote -> publish (Redis) -> serve (API) ->
recommendations on home / product page / email -> a view changes the answer -> clean stop.

Each step is the real ``recsys`` command in a subprocess (so its progress bars and summaries
show as they would for a user). Unless ``REDIS_URL`` is set, the steps share the embedded
Redis of ``<out>/redis`` (``RECSYS_REDIS_DIR``): started here, found by every step, stopped
at the end (its data stays on disk; any ``recsys`` command with that ``RECSYS_REDIS_DIR``
starts it again). A server left running from an earlier demo in ``<out>`` is stopped before
the folder is re-created.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from recsys.cli import app

console = Console()
REPO = Path(__file__).resolve().parents[2]
DEMO_EXPERIMENT = REPO / "experiments" / "demo-shop.toml"


def _step(title: str) -> None:
    console.rule(f"[bold cyan]{title}")


def _run(args: list[str], env: dict[str, str]) -> None:
    console.print(f"[dim]$ recsys {' '.join(args)}[/dim]")
    done = subprocess.run([sys.executable, "-m", "recsys", *args], env=env, check=False)
    if done.returncode != 0:
        console.print(f"[red]step failed: recsys {' '.join(args)} (exit {done.returncode})")
        raise typer.Exit(done.returncode)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _http(method: str, url: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method=method, headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _wait_ready(base: str, server: subprocess.Popen[bytes], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the API exited early (code {server.returncode})")
        try:
            _http("GET", f"{base}/readyz")
            return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.3)
    raise RuntimeError("the API did not become ready in time")


def _show(title: str, answer: dict[str, Any]) -> list[str]:
    table = Table(
        title=f"{title}  (model version {answer.get('version')}, degraded={answer.get('degraded')})"
    )
    table.add_column("#", justify="right")
    table.add_column("item")
    table.add_column("score", justify="right")
    table.add_column("reason")
    for rank, item in enumerate(answer["items"], 1):
        table.add_row(str(rank), item["item_id"], f"{item['score']:.3f}", item["reason"])
    console.print(table)
    return [item["item_id"] for item in answer["items"]]


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Working folder (re-created).")] = Path("demo-data"),
    size: Annotated[str, typer.Option(help="Synthetic shop preset.")] = "demo",
    experiment: Annotated[Path, typer.Option(help="Experiment file to train.")] = DEMO_EXPERIMENT,
) -> None:
    """Run the whole pipeline on a synthetic shop and show the API answering."""
    from serving.connection import embedded_url, stop_embedded

    if out.exists():
        stop_embedded(out / "redis")  # never delete the files of a running server
        shutil.rmtree(out)
    out.mkdir(parents=True)
    env = dict(os.environ)
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    env["RECSYS_DEMO_DIR"] = str(out.resolve())
    env.setdefault("RECSYS_FALLBACK_PATH", str((out / "fallback.json").resolve()))
    embedded = not env.get("REDIS_URL")
    if embedded:
        env["RECSYS_REDIS_DIR"] = str((out / "redis").resolve())
        console.print(f"[dim]embedded Redis: {embedded_url(env['RECSYS_REDIS_DIR'])}[/dim]")
    try:
        _pipeline(out, size, experiment, env)
    finally:
        if embedded:
            stop_embedded(env["RECSYS_REDIS_DIR"])
    stopped = "API and embedded Redis" if embedded else "API"
    console.print(f"[green]demo finished: {stopped} stopped cleanly.[/green]")
    if embedded:
        console.print(
            f"The published data stays in {out / 'redis'}: `RECSYS_REDIS_DIR={out / 'redis'} "
            "recsys serve` serves it again (the server restarts on demand)."
        )
    console.print("Runs are in MLflow: `make mlflow-ui`.")


def _pipeline(out: Path, size: str, experiment: Path, env: dict[str, str]) -> None:
    """The seven steps, each a ``recsys`` process with ``env``."""
    shop, ingested = out / "shop", out / "ingest"

    _step("1/7 synthetic shop")
    _run(["synth", "--size", size, "--out", str(shop)], env)
    _step("2/7 ingest + validation (dirty rows are quarantined with a reason)")
    _run(
        [
            "ingest",
            str(shop / "events.csv"),
            "--catalog",
            str(shop / "catalog.csv"),
            "--customers",
            str(shop / "customers.csv"),
            "--out",
            str(ingested),
        ],
        env,
    )
    _step("3/7 interaction matrices")
    _run(["build", str(ingested)], env)
    _step("4/7 train + evaluate, tracked in MLflow")
    _run(["train", str(experiment)], env)
    _run(["promote"], env)
    _step("5/7 publish the champion's candidates to Redis")
    _run(["publish"], env)

    _step("6/7 serve")
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "recsys", "serve", "--port", str(port)], env=env
    )
    try:
        _wait_ready(base, server)
        console.print(f"API ready on {base} (OpenAPI docs at {base}/docs)")
        _step("7/7 recommendations")
        customer = _sample_customer(ingested)
        home = _show(
            f"home page for customer {customer}",
            _http("GET", f"{base}/v1/customers/{customer}/recommendations?n=8&context=home"),
        )
        product = home[0] if home else None
        if product:
            _show(
                f"product page of {product}",
                _http(
                    "GET",
                    f"{base}/v1/customers/{customer}/recommendations"
                    f"?n=5&context=product&item_id={product}",
                ),
            )
        email = _http(
            "POST",
            f"{base}/v1/email/recommendations",
            {"customer_ids": [customer], "n": 5, "record": True},
        )
        _show(f"email list for {customer} (sends recorded)", {**email, **email["results"][0]})
        viewed = _pick_other_item(base, customer, home)
        console.print(f"\n[bold]customer {customer} views item {viewed}[/bold]")
        _http(
            "POST",
            f"{base}/v1/events",
            {"customer_id": customer, "item_id": viewed, "event_type": "view"},
        )
        after = _show(
            "home page after the view",
            _http("GET", f"{base}/v1/customers/{customer}/recommendations?n=8&context=home"),
        )
        changed = after != home
        console.print(
            f"[bold {'green' if changed else 'red'}]the answer "
            f"{'changed' if changed else 'did NOT change'} after the view[/]"
        )
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()


def _sample_customer(ingested: Path) -> str:
    """A customer with a long purchase history (their list shows the model at work)."""
    import polars as pl

    events = pl.read_parquet(ingested / "events.parquet", columns=["customer_id", "event_type"])
    counts = (
        events.filter(pl.col("event_type") == "purchase")
        .group_by("customer_id")
        .len()
        .sort(["len", "customer_id"], descending=[True, False])
    )
    return str(counts["customer_id"][len(counts) // 10])


def _pick_other_item(base: str, customer: str, shown: list[str]) -> str:
    """An item from another part of the catalog than what the customer was shown."""
    answer = _http("GET", f"{base}/v1/customers/__demo_cold__/recommendations?n=50")
    for item in answer["items"]:
        if item["item_id"] not in shown:
            return str(item["item_id"])
    return shown[-1]
