"""CLI commands: train, tune, runs, promote (MLflow experiments and the model registry)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from recsys.cli import app

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

ExperimentFile = Annotated[
    Path, typer.Argument(help="Experiment file (TOML), e.g. experiments/als-shop.toml")
]


@contextmanager
def _stages(total: int, title: str) -> Iterator[Callable[[str], None]]:
    """A rich progress bar advanced once per named stage."""
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        transient=False,
    ) as bar:
        task = bar.add_task(title, total=total)
        started = False

        def step(name: str) -> None:
            nonlocal started
            if started:
                bar.advance(task)
            started = True
            bar.update(task, description=f"{title}: {name}")

        yield step
        bar.update(task, completed=total, description=f"{title}: done")


def _summary(outcome: Any, title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    result = outcome.result
    table = Table(title=title)
    table.add_column("metric")
    for k in sorted(result.curves["ndcg"]):
        table.add_column(f"@{k}", justify="right")
    for name, curve in result.curves.items():
        table.add_row(name, *(f"{curve[k]:.4f}" for k in sorted(curve)))
    console = Console()
    console.print(table)
    if result.segments:
        seg = Table(title=f"by history length (at K={result.k})")
        seg.add_column("segment")
        seg.add_column("customers", justify="right")
        for name in ("ndcg", "recall", "hit_rate"):
            seg.add_column(name, justify="right")
        for label, values in result.segments.items():
            seg.add_row(
                label,
                str(int(values["customers"])),
                *(f"{values[m]:.4f}" for m in ("ndcg", "recall", "hit_rate")),
            )
        console.print(seg)
    version = f", registered version {outcome.version}" if outcome.version else ""
    console.print(
        f"test ndcg@{result.k} = [bold]{result.ndcg:.4f}[/bold] over {result.n_customers} "
        f"customers; run {outcome.run_id}{version}"
    )
    _baseline_line(console, outcome.baseline, result.k)


def _baseline_line(console: Any, baseline: Any, k: int) -> None:
    """The popularity baseline's NDCG and the lift; a red warning when the model is below."""
    if baseline is None:
        return
    lift = "n/a (popularity scores 0)" if baseline.lift is None else f"{baseline.lift:.2f}x"
    line = (
        f"popularity baseline ndcg@{k} = {baseline.baseline_ndcg:.4f} on the same split; "
        f"lift {lift}"
    )
    if baseline.below:
        console.print(
            f"[bold red]warning: the model ranks worse than popularity[/bold red] "
            f"({baseline.model_ndcg:.4f} < {baseline.baseline_ndcg:.4f}); `recsys promote` "
            "will refuse it without --force. Tune it (`recsys tune`) or use fewer factors / "
            "more regularization on a small or dense catalog."
        )
        console.print(f"[red]{line}[/red]")
    else:
        console.print(line)


@contextmanager
def _data_errors() -> Iterator[None]:
    """Data the experiment cannot use (a source it cannot read, nothing to evaluate): a
    message and exit code 2, not a traceback."""
    from features.sources import SourceError
    from recsys.evaluation.protocol import NothingToEvaluate

    try:
        yield
    except (SourceError, NothingToEvaluate, FileNotFoundError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None


def _load_spec(path: Path) -> Any:
    from recsys.experiment import ExperimentSpec

    try:
        return ExperimentSpec.load(path)
    except (FileNotFoundError, ValueError) as error:
        raise typer.BadParameter(str(error)) from None


@app.command()
def train(experiment: ExperimentFile) -> None:
    """Train one experiment: protocol split, fit, evaluate on test, log to MLflow, register."""
    from recsys.experiment import train as run_train

    spec = _load_spec(experiment)
    settings = spec.mlflow
    stages = 5
    if settings.get("log_model", True):
        stages += 2 if settings.get("refit_all", True) else 1
    with _data_errors(), _stages(stages, spec.name) as step:
        outcome = run_train(spec, progress=step)
    _summary(outcome, f"{spec.name}: {spec.model_name} on test")


@app.command()
def tune(
    experiment: ExperimentFile,
    trials: Annotated[int | None, typer.Option(help="Trials (default: tune.trials)")] = None,
    timeout: Annotated[float | None, typer.Option(help="Seconds (default: tune.timeout)")] = None,
) -> None:
    """Optuna search (nested runs) on validation; refit the best on train; test once."""
    from rich.console import Console

    from recsys.tuning import tune as run_tune

    spec = _load_spec(experiment)
    console = Console()

    def step(name: str) -> None:
        console.print(f"[bold]{spec.name}[/bold]: {name}")

    with _data_errors():
        outcome = run_tune(spec, trials=trials, timeout=timeout, progress=step)
    console.print(
        f"best on validation ({outcome.extra['trials']} trials): "
        f"{outcome.extra['best_validation']:.4f} with {outcome.extra['best']}"
    )
    _summary(outcome, f"{spec.name}: tuned {spec.model_name} on test")


@app.command()
def runs(
    experiment: Annotated[str, typer.Option(help="MLflow experiment")] = "recsys",
    limit: Annotated[int, typer.Option(help="How many runs")] = 20,
    k: Annotated[int, typer.Option(help="K of the metrics shown")] = 10,
) -> None:
    """Compare recent runs: model, test metrics at K, registered version."""
    from datetime import UTC, datetime

    from rich.console import Console
    from rich.table import Table

    from recsys import tracking
    from recsys.experiment import LIFT_METRIC

    found = tracking.list_runs(experiment, limit)
    console = Console()
    if not console.is_terminal:
        console = Console(width=200)
    if not found:
        console.print(f"no runs in experiment {experiment!r} at {tracking.tracking_uri()}")
        return
    table = Table(title=f"runs of {experiment!r} ({tracking.tracking_uri()})")
    metrics = ("ndcg", "recall", "precision", "map", "hit_rate", "coverage")
    columns = ("started", "run", "name", "kind", "model", *[f"{m}@{k}" for m in metrics], "lift")
    for col in columns:
        table.add_column(col, justify="right" if "@" in col or col == "lift" else "left")
    table.add_column("version")
    best = max((r.data.metrics.get(f"test_ndcg_at_{k}", -1.0) for r in found), default=-1.0)
    for r in found:
        started = datetime.fromtimestamp(r.info.start_time / 1000, tz=UTC)
        values = [r.data.metrics.get(f"test_{m}_at_{k}") for m in metrics]
        cells = ["-" if v is None else f"{v:.4f}" for v in values]
        if values[0] is not None and values[0] == best:
            cells[0] = f"[bold green]{cells[0]}[/bold green]"
        table.add_row(
            started.strftime("%m-%d %H:%M"),
            r.info.run_id[:8],
            r.info.run_name or "",
            r.data.tags.get("kind", ""),
            r.data.tags.get("model", ""),
            *cells,
            _lift_cell(r.data.metrics.get(LIFT_METRIC)),
            r.data.tags.get("registered_version", ""),
        )
    console.print(table)


def _lift_cell(lift: float | None) -> str:
    """The lift over popularity; red below 1 (the model ranks worse than popularity)."""
    if lift is None:
        return "-"
    return f"[red]{lift:.2f}x[/red]" if lift < 1 else f"{lift:.2f}x"


@app.command()
def promote(
    version: Annotated[
        str | None, typer.Option(help="Model version (default: the latest registered)")
    ] = None,
    name: Annotated[str, typer.Option(help="Registered model name")] = "recsys",
    alias: Annotated[str, typer.Option(help="Alias to set")] = "champion",
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Promote even below the popularity baseline or the current champion"
        ),
    ] = False,
) -> None:
    """Point the `champion` alias (what publishing reads) at a registered model version.

    Refused (exit code 2) when the version's test NDCG is below its run's popularity
    baseline, or below the current champion's on the same data and protocol; --force
    promotes anyway.
    """
    from mlflow.exceptions import MlflowException
    from rich.console import Console

    from recsys import tracking
    from recsys.promotion import check_promotion

    console = Console(stderr=True, soft_wrap=True)
    try:
        chosen = tracking.resolve_version(name, version)
        check = check_promotion(tracking.client(), name, chosen, alias)
    except (LookupError, MlflowException) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    for note in check.notes:
        console.print(f"[yellow]note:[/yellow] {note}")
    if not check.allowed:
        for reason in check.refusals:
            console.print(f"[bold red]refused:[/bold red] {reason}")
        if not force:
            console.print(f"{name}@{alias} unchanged; use --force to promote it anyway")
            raise typer.Exit(2)
        console.print("[yellow]promoting anyway (--force)[/yellow]")
    tracking.promote(name, chosen, alias)
    typer.echo(f"{name}@{alias} -> version {chosen}")
