"""Ingest a named dataset or an event file into canonical parquet files.

python -m features.ingest ml-100k --out runs/data/ml-100k
python -m features.ingest my_events.csv --out runs/data/mine --user-col uid --time-col ts
python -m features.ingest simulator --out runs/data/sim      # streams; also writes truth.parquet
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.logging import RichHandler

from features.datasets import DATASETS, SIMULATOR_CONFIGS, load_dataset, load_path
from features.events import IngestError, IngestReport
from features.simulator import write_simulated

logger = logging.getLogger("features.ingest")
app = typer.Typer(add_completion=False, help=__doc__)


def ingest(
    source: str,
    out: Path,
    format: str | None = None,  # noqa: A002 - the user-facing option name
    data_dir: Path | None = None,
    **columns: str,
) -> IngestReport:
    """Write events.parquet, items.parquet and ingest_report.json for ``source`` into ``out``."""
    if source in SIMULATOR_CONFIGS and format is None:
        return write_simulated(SIMULATOR_CONFIGS[source], out)
    if source in DATASETS and format is None:
        data = load_dataset(source, data_dir)
    else:
        data = load_path(source, format, **columns)
    data.save(out)
    return data.report


def log_report(report: IngestReport, out: Path) -> None:
    logger.info("%s (%s) -> %s", report.source, report.format, out)
    logger.info(
        "rows %d, kept %d, malformed %d; %d users, %d items; timestamps %s",
        report.n_rows,
        report.n_valid,
        report.n_malformed,
        report.n_users,
        report.n_items,
        "derived from order" if report.timestamps_derived else "from the source",
    )
    for example in report.malformed_examples:
        logger.warning("malformed: %s", example)
    for note in report.notes:
        logger.info("note: %s", note)


@app.command()
def main(
    source: Annotated[str, typer.Argument(help=f"a dataset name ({', '.join(DATASETS)}) or a file path")],
    out: Annotated[Path, typer.Option("--out", help="output folder")],
    format: Annotated[str | None, typer.Option("--format", help="reader; detected when omitted")] = None,  # noqa: A002
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="default: $GEMIREC_DATA_DIR")] = None,
    user_col: Annotated[str | None, typer.Option(help="tables: user column")] = None,
    item_col: Annotated[str | None, typer.Option(help="tables: item column")] = None,
    time_col: Annotated[str | None, typer.Option(help="tables: time column")] = None,
) -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s", handlers=[RichHandler(show_path=False)])
    columns = {k: v for k, v in (("user_col", user_col), ("item_col", item_col), ("time_col", time_col)) if v}
    try:
        report = ingest(source, out, format, data_dir, **columns)
    except IngestError as error:
        typer.echo(f"ingest failed: {error}", err=True)
        raise typer.Exit(code=2) from None
    log_report(report, out)


if __name__ == "__main__":
    app()
