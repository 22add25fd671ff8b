"""`gemirec` command line: the common jobs, each a thin call into the domain packages.

    gemirec train --dataset simulator --out runs/demo
    gemirec train --events my_events.csv --model gemirec --out runs/mine
    gemirec explain runs/demo/model
    gemirec recommend runs/demo/model --history 12,40,7
    gemirec benchmark --dataset ml-100k --models all --seeds 3
    gemirec up / gemirec down        # local Prefect server + the train-gemirec deployment
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(add_completion=False, no_args_is_help=True, help="GemiRec multi-interest retrieval")
console = Console()


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _load(dataset: str | None, events: Path | None, data_dir: Path | None):
    from features.datasets import load_dataset, load_path
    from features.events import IngestError

    try:
        if events is not None:
            return load_path(events)
        return load_dataset(dataset or "simulator", data_dir)
    except IngestError as e:
        console.print(f"[red]error:[/] {e}")
        raise typer.Exit(2) from e


@app.command()
def train(
    dataset: str = typer.Option("simulator", help="named dataset (see features/datasets.py)"),
    events: Path = typer.Option(None, help="your own events file (csv/parquet/txt); overrides --dataset"),
    model: str = typer.Option("gemirec", help="gemirec, single, comirec-sa, mind, comirec-dr, ..."),
    preset: str = typer.Option("long", help="config preset in model/presets"),
    out: Path = typer.Option(Path("runs/latest"), help="output folder (model/ inside it)"),
    set_: list[str] = typer.Option([], "--set", help="config override, e.g. train.lr=0.003"),
    data_dir: Path = typer.Option(None, help="folder of the public datasets (or GEMIREC_DATA_DIR)"),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Train a model, evaluate it on held-out users and save a self-describing model folder."""
    from model.config import load_config
    from model.pipeline import train_model

    _setup_logging(verbose)
    start = time.perf_counter()
    inter = _load(dataset, events, data_dir)
    report = inter.report
    console.print(f"data: {report.n_valid} events, {report.n_users} users, {report.n_items} items "
                  f"({report.n_malformed} malformed rows skipped)")
    try:
        cfg = load_config(preset, [f"model={model}", *set_])
    except ValueError as e:
        console.print(f"[red]error:[/] {e}")
        raise typer.Exit(2) from e
    lineage = {"source": report.source, "data_hash": inter.data_hash(), "preset": preset}
    outcome = train_model(inter.events, inter.items, cfg, out, lineage=lineage)
    table = Table(title=f"{model} on {events or dataset}")
    table.add_column("metric")
    table.add_column("validation")
    table.add_column("test")
    for key in ("recall@20", "recall@50", "ndcg@50", "hit@50", "diversity@50", "novel_recall@50",
                "unique_ratio@50"):
        if key in outcome.metrics["test"]:
            table.add_row(key, f"{100 * outcome.metrics['val'][key]:.2f}",
                          f"{100 * outcome.metrics['test'][key]:.2f}")
    console.print(table)
    console.print(f"model folder: [bold]{outcome.folder}[/]  ({time.perf_counter() - start:.0f}s)")


@app.command()
def explain(folder: Path) -> None:
    """Print what every interest code of a saved GemiRec model stands for."""
    from model.explain import print_interests

    path = folder / "interests.json"
    if not path.exists():
        console.print(f"[red]error:[/] {path} not found (only GemiRec model folders carry interests)")
        raise typer.Exit(2)
    print_interests(json.loads(path.read_text()), console)


@app.command()
def recommend(folder: Path, history: str = typer.Option(..., help="comma-separated item ids, oldest first"),
              n: int = typer.Option(10, min=1, max=1000)) -> None:
    """Recommend for one history with a saved model (interests shown for GemiRec)."""
    from model.saved import ModelFolderError, load_model

    try:
        loaded = load_model(folder)
        items = [int(x) for x in history.split(",") if x.strip()]
    except (ModelFolderError, ValueError) as e:
        console.print(f"[red]error:[/] {e}")
        raise typer.Exit(2) from e
    rec = loaded.recommend([items], n)
    if rec.interest_codes is not None:
        for code, p in zip(rec.interest_codes[0], rec.interest_probs[0]):
            console.print(f"interest {tuple(int(c) for c in code)}  p={p:.2f}")
    console.print("items: " + ", ".join(str(int(i)) for i in rec.ranked[0] if i >= 0))


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def benchmark(ctx: typer.Context) -> None:
    """Run the benchmark campaign (arguments as for `python -m benchmarks.run`)."""
    from benchmarks.run import main

    main(ctx.args)


@app.command()
def ingest(source: str, out: Path = typer.Option(..., help="output folder for the parquet tables"),
           data_dir: Path = typer.Option(None)) -> None:
    """Read a named dataset or a file into canonical parquet tables, reporting malformed rows."""
    inter = _load(None if Path(source).exists() else source, Path(source) if Path(source).exists() else None,
                  data_dir)
    inter.save(out)
    r = inter.report
    console.print(f"{r.n_valid} events, {r.n_users} users, {r.n_items} items, "
                  f"{r.n_malformed} malformed -> {out}")
    for ex in r.malformed_examples:
        console.print(f"  malformed: {ex}")


@app.command()
def up(port: int = typer.Option(4200, help="port of the local Prefect server (127.0.0.1 only)")) -> None:
    """Start a local Prefect server and serve the train-gemirec deployment, both in the background."""
    from flows.server import LocalPrefect, ServerError
    from flows.server import up as start

    _setup_logging(True)
    try:
        api_url = start(LocalPrefect(port=port))
    except ServerError as e:
        console.print(f"[red]error:[/] {e}")
        raise typer.Exit(1) from e
    console.print(f"Prefect is up at {api_url.removesuffix('/api')} (state in .prefect/). In your shell:\n"
                  f"  export PREFECT_API_URL={api_url}\n"
                  "  prefect deployment run train-gemirec/train-gemirec --watch")


@app.command()
def down(port: int = typer.Option(4200)) -> None:
    """Stop what `gemirec up` started."""
    from flows.server import LocalPrefect
    from flows.server import down as stop

    stopped = stop(LocalPrefect(port=port))
    console.print("stopped " + (", ".join(stopped) if stopped else "nothing (not running)"))


if __name__ == "__main__":
    app()
