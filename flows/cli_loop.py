"""`gemirec events push FILE` and `gemirec loop`: the commands of the product loop (registered in flows/cli.py).

    gemirec events push new_events.csv            # into the production version's feature store
    gemirec events push new.parquet --store runs/feature_store/simulator
    gemirec loop                                  # drift → retrain → gate → reload, narrated (flows/loop.py)
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

events_app = typer.Typer(add_completion=False, no_args_is_help=True, help="fresh events into the feature store")
console = Console()


def _store_of(registry_name: str) -> Path:
    """The store the production version's train run filled (its metadata); else the source's default."""
    from flows.stack import Stack
    from flows.train_flow import DEFAULT_STORES
    from serving import registry

    version = registry.production(Stack(registry_name=registry_name).registry)
    recorded = version.metadata.get("feature_store") if version else None
    return Path(recorded) if recorded else Path(DEFAULT_STORES) / registry_name.removeprefix("gemirec-")


def _read(path: Path):
    import pandas as pd

    if not path.exists():
        raise ValueError(f"{path}: file not found")
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    if path.suffix in (".jsonl", ".json"):
        return pd.read_json(path, lines=path.suffix == ".jsonl")
    return pd.read_csv(path, sep=None, engine="python", dtype=str)  # strings: bad cells are counted, not cast


@events_app.command("push")
def push(
    file: Path = typer.Argument(..., help="csv/parquet/jsonl with user_id, item_id, timestamp (epoch s or ISO)"),
    store: Path = typer.Option(None, help="Feast store folder (default: the production version's)"),
    registry_name: str = typer.Option("gemirec-simulator", help="whose production version names the store"),
) -> None:
    """Add new interactions to the users' online histories (seen by the next /recommend, no
    re-materialization) and to the store's log for the next training. Pushing a file twice changes nothing."""
    from features.push import PushError, push_events
    from features.store import StoreConfig

    target = store or _store_of(registry_name)
    if not (target / "feature_store.yaml").exists():
        console.print(f"[red]error:[/] {target} is not a feature store (no feature_store.yaml): train first, or "
                      "pass --store")
        raise typer.Exit(2)
    try:
        report = push_events(StoreConfig(target), _read(file))
    except (PushError, ValueError) as e:
        console.print(f"[red]error:[/] {e}")
        raise typer.Exit(2) from e
    table = Table(title=f"{file} → {target}")
    table.add_column("rows")
    table.add_column("count", justify="right")
    for name, value in (("received", report.received), ("accepted (online + log)", report.accepted),
                        ("  of them late (log only)", report.late), ("duplicates (skipped)", report.duplicates),
                        ("rejected (malformed)", report.rejected), ("users updated online", report.users_updated)):
        table.add_row(name, str(value))
    console.print(table)
    for example in report.malformed_examples:
        console.print(f"  [yellow]malformed:[/] {example}")
    console.print(f"done in {report.seconds:.2f} s")


def loop(
    train_seconds: float = typer.Option(120.0, help="training budget of each run (train.max_time_s)"),
    preset: str = typer.Option("long", help="config preset in model/presets"),
    new_users: int = typer.Option(1000, min=100, help="new, drifted users whose events are pushed"),
    shift: float = typer.Option(1.5, help="their topic tilt (the simulator's shift)"),
) -> None:
    """Close the loop on the local stack: drifted traffic → monitor → retrain → gate → the service reloads,
    with a client counting requests the whole time. Trains a first model when production has no store."""
    from flows.demo import DemoConfig, DemoError
    from flows.loop import Loop, LoopConfig
    from flows.server import ServerError
    from flows.stack import StackError

    train = DemoConfig(preset=preset, train_seconds=train_seconds).train_parameters()
    try:
        Loop(LoopConfig(train=train, new_users=new_users, shift=shift), console).run()
    except (DemoError, ServerError, StackError, RuntimeError, TimeoutError) as e:
        console.print(f"[red]error:[/] {e}\n(what started is still running: `gemirec down` stops it)")
        raise typer.Exit(1) from e
