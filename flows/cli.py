"""`gemirec` command line: the common jobs, each a thin call into the domain packages.

    gemirec demo                     # the whole stack end to end, left running (flows/demo.py)
    gemirec down                     # stop everything demo/up/serve started
    gemirec ingest my_events.csv --out data/mine
    gemirec train --dataset simulator --out runs/demo
    gemirec evaluate runs/demo/model --dataset simulator
    gemirec explain runs/demo/model
    gemirec recommend runs/demo/model --history 12,40,7
    gemirec benchmark --dataset ml-100k --models all --seeds 3
    gemirec up                       # local Prefect server + the train-/monitor-gemirec deployments
    gemirec serve                    # bentoml serve of the production model
    gemirec monitor                  # one monitor-gemirec run on the service's response logs
    gemirec events push new.csv      # fresh events into the online store and the training log
    gemirec loop                     # drift -> retrain -> gate -> reload, narrated (flows/loop.py)
"""

from __future__ import annotations

import json
import logging
import os
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
    index: str = typer.Option("flat", help="served index: flat (exact); ivfpq, ivf, hnsw (large catalogues)"),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Train a model, evaluate it on held-out users and save a self-describing model folder."""
    from model.config import load_config
    from model.faiss_index import KINDS
    from model.training.pipeline import train_model

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
    if index not in KINDS:
        console.print(f"[red]error:[/] --index {index!r}: expected one of {', '.join(KINDS)}")
        raise typer.Exit(2)
    outcome = train_model(inter.events, inter.items, cfg, out, lineage=lineage, index_kind=index)
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
def evaluate(
    folder: Path,
    dataset: str = typer.Option("simulator", help="named dataset whose users to evaluate on"),
    events: Path = typer.Option(None, help="your own events file instead of --dataset"),
    split: str = typer.Option("test", help="test or val users (the 8:1:1 split of training)"),
    data_dir: Path = typer.Option(None, help="folder of the public datasets (or GEMIREC_DATA_DIR)"),
) -> None:
    """Evaluate a saved model folder on a dataset's held-out users and print the metrics."""
    from flows.evaluation import SPLITS, evaluate_saved
    from model.persistence.saved import ModelFolderError, load_model

    if split not in SPLITS:
        console.print(f"[red]error:[/] --split {split!r}: choose one of {', '.join(SPLITS)}")
        raise typer.Exit(2)
    try:
        loaded = load_model(folder)
    except ModelFolderError as e:
        console.print(f"[red]error:[/] {e}")
        raise typer.Exit(2) from e
    inter = _load(dataset, events, data_dir)
    try:
        result = evaluate_saved(loaded, inter.events, inter.items, split)
    except ValueError as e:
        console.print(f"[red]error:[/] {e}")
        raise typer.Exit(2) from e
    source = events or dataset
    # the heading on its own line: as a table title rich wraps it to the table's width
    console.print(f"[bold]{loaded.cfg.model} on {source}, {result.n_users} {split} users[/]")
    table = Table()
    table.add_column("metric")
    table.add_column("value")
    for key, value in result.metrics.items():
        if "@" in key:  # shares in %, except the count of distinct categories in a list
            table.add_row(key, f"{value:.2f}" if key.startswith("distinct_") else f"{100 * value:.2f} %")
    console.print(table)
    if result.n_unknown_events:
        console.print(f"{result.n_unknown_events} of {result.n_events} events are on items the model does "
                      "not know: dropped")
    if not result.same_data:
        console.print("[yellow]note:[/] not the data this model was trained on, so these users may include "
                      "users it trained on")


@app.command()
def explain(folder: Path) -> None:
    """Print what every interest code of a saved GemiRec model stands for."""
    from model.gemirec.explain import print_interests

    path = folder / "interests.json"
    if not path.exists():
        console.print(f"[red]error:[/] {path} not found (only GemiRec model folders carry interests)")
        raise typer.Exit(2)
    print_interests(json.loads(path.read_text()), console)


@app.command()
def recommend(folder: Path, history: str = typer.Option(..., help="comma-separated item ids, oldest first"),
              n: int = typer.Option(10, min=1, max=1000)) -> None:
    """Recommend for one history with a saved model (interests shown for GemiRec)."""
    from model.persistence.saved import ModelFolderError, load_model

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
    """Start a local Prefect server and serve the train-/monitor-gemirec deployments, in the background."""
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
def down(port: int = typer.Option(4200, help="port of the local Prefect server")) -> None:
    """Stop what `gemirec demo`, `up` and `serve --background` started: service, Evidently UI, Prefect."""
    from flows.stack import Stack
    from flows.stack import down as stop

    stopped = stop(Stack(prefect_port=port))
    console.print("stopped " + (", ".join(stopped) if stopped else "nothing (not running)"))


@app.command()
def serve(
    registry_name: str = typer.Option("gemirec-simulator", help="BentoML model to serve production of"),
    folder: Path = typer.Option(None, help="serve this saved model folder instead of the registry"),
    port: int = typer.Option(3000, help="port on 127.0.0.1"),
    background: bool = typer.Option(False, "--background", help="return once ready; `gemirec down` stops it"),
) -> None:
    """Serve the production model (hot-reloading newly promoted versions) with `bentoml serve`."""
    import subprocess
    import sys

    from flows.stack import Stack, StackError, production, start_service
    from model.persistence.saved import ModelFolderError, verify_folder
    from serving.launch import SERVICE

    stack = Stack(service_port=port, registry_name=registry_name)
    env = {"GEMIREC_REGISTRY_NAME": registry_name}
    try:
        if folder is not None:
            verify_folder(folder)
            env["GEMIREC_MODEL_FOLDER"] = str(folder.resolve())
        else:
            console.print(f"serving {production(stack).tag}")
        if background:
            console.print(f"ready at {start_service(stack, env)}; stop it with `gemirec down`")
            return
    except (StackError, ModelFolderError, RuntimeError, TimeoutError) as e:
        console.print(f"[red]error:[/] {e}")
        raise typer.Exit(2) from e
    command = [sys.executable, "-m", "bentoml", "serve", SERVICE, "--host", "127.0.0.1", "--port", str(port)]
    raise typer.Exit(subprocess.call(command, env={**os.environ, **env}))


@app.command()
def monitor(
    logs: Path = typer.Option(Path("runs/serving/logs"), help="the service's response logs"),
    window_hours: float = typer.Option(24.0, help="look at this many hours back from now"),
    registry_name: str = typer.Option("gemirec-simulator", help="whose production reference to compare with"),
    reference: Path = typer.Option(None, help="a reference folder instead of the production model's"),
    trigger: bool = typer.Option(True, "--trigger/--no-trigger", help="start train-gemirec on drift"),
) -> None:
    """Run the monitor-gemirec flow once (against the local Prefect server when `gemirec up` runs it)."""
    from flows.stack import Stack, StackError, production

    if not any(logs.glob("*.jsonl")):
        console.print(f"[red]error:[/] no response logs in {logs}: serve a model (`gemirec serve`) and send "
                      "it requests first")
        raise typer.Exit(2)
    try:
        if reference is None:
            production(Stack(registry_name=registry_name))
        elif not reference.is_dir():
            raise StackError(f"reference folder {reference} not found")
    except StackError as e:
        console.print(f"[red]error:[/] {e}")
        raise typer.Exit(2) from e
    result = _run_monitor(logs, window_hours, registry_name, reference, trigger)
    console.print(f"verdict [bold]{result['verdict']}[/]: drift share {result['drift_share']:.2f} over "
                  f"{result['n_requests']} responses ({result['n_corrupt']} corrupt lines skipped); snapshot "
                  f"{result['snapshot'] or 'none'}; retraining {result['triggered'] or 'not triggered'}")


def _run_monitor(logs: Path, window_hours: float, registry_name: str, reference: Path | None,
                 trigger: bool) -> dict:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.monitor_flow import monitor_gemirec
    from flows.server import LocalPrefect, healthy

    params = {"logs": str(logs), "window_hours": window_hours, "registry_name": registry_name,
              "reference": reference and str(reference), "trigger": trigger}
    local = LocalPrefect()
    if healthy(local):  # our server runs: the run shows in its UI
        with temporary_settings(updates={PREFECT_API_URL: local.api_url}):
            return monitor_gemirec(**params)
    return monitor_gemirec(**params)  # Prefect's temporary local server


@app.command()
def demo(
    train_seconds: float = typer.Option(120.0, help="training budget (train.max_time_s); best epoch kept"),
    preset: str = typer.Option("long", help="config preset in model/presets"),
    traffic: int = typer.Option(300, min=1, help="simulated requests sent before monitoring"),
) -> None:
    """Start the whole stack, train on the simulator, serve, query, monitor; leave it running."""
    from flows.demo import Demo, DemoConfig, DemoError
    from flows.server import ServerError
    from flows.stack import StackError

    _setup_logging(False)
    try:
        Demo(DemoConfig(preset=preset, train_seconds=train_seconds, traffic=traffic), console).run()
    except (DemoError, ServerError, StackError, RuntimeError, TimeoutError) as e:
        console.print(f"[red]error:[/] {e}\n(what started is still running: `gemirec down` stops it)")
        raise typer.Exit(1) from e


def _product_loop_commands() -> None:
    from flows.cli_loop import events_app, loop

    app.add_typer(events_app, name="events")
    app.command()(loop)


_product_loop_commands()

if __name__ == "__main__":
    app()
