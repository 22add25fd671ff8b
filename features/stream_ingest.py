"""Ingest a large CSV event table in bounded memory: validated block by block, sorted on disk by DuckDB.

The readers in features/readers.py hold a file in memory, which is right for the datasets in shared/data
and wrong for a log of tens of millions of rows. Here pyarrow's streaming CSV reader yields blocks of
``CHUNK_BYTES``; each is validated by features.events.validate_rows (malformed rows counted, a few quoted;
lines with the wrong number of fields too), the valid rows go to a scratch parquet file with their line
number, and DuckDB writes the canonical order (user, time, then source order) under its memory cap,
spilling to disk past it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from features.events import EVENT_COLUMNS, IngestReport, validate_rows
from features.training_set import _quote, connect

CHUNK_BYTES = 16 << 20  # about 500k lines of a user,item,time CSV per batch
SCRATCH_SCHEMA = pa.schema([("user_id", pa.int64()), ("item_id", pa.int64()),
                            ("event_timestamp", pa.timestamp("ns", tz="UTC")), ("line", pa.int64())])


def ingest_csv(path: Path, out: Path, user_col: str = "user_id", item_col: str = "item_id",
               time_col: str = "event_timestamp", time_unit: str = "s", chunk_bytes: int = CHUNK_BYTES
               ) -> IngestReport:
    """``path`` (a CSV with a header) → ``out``/events.parquet, items.parquet, ingest_report.json."""
    out.mkdir(parents=True, exist_ok=True)
    scratch = out / "unsorted.parquet"
    report = IngestReport(source=str(path), format="csv-stream")
    rename = {user_col: "user_id", item_col: "item_id", time_col: "event_timestamp"}
    wrong_width: list[str] = []  # lines with the wrong number of fields, as the CSV reader met them

    def bad_width(row) -> str:
        wrong_width.append(row.text[:120])  # pyarrow knows no line number here: it parses blocks ahead
        return "skip"

    reader = pacsv.open_csv(
        path, read_options=pacsv.ReadOptions(block_size=chunk_bytes),
        parse_options=pacsv.ParseOptions(invalid_row_handler=bad_width),
        # every column as text: a bad value in one row must not change how the whole chunk parses
        convert_options=pacsv.ConvertOptions(column_types={c: pa.string() for c in rename},
                                             include_columns=list(rename), strings_can_be_null=True))
    with pq.ParquetWriter(scratch, SCRATCH_SCHEMA) as writer:
        for batch in reader:
            chunk = batch.to_pandas().rename(columns=rename)
            # rows are numbered among the lines of the right width: the reader parses blocks ahead, so how
            # many wrong-width lines precede a block is not known when the block arrives
            first_row = report.n_rows + 1
            report.n_rows += len(chunk)
            clean, ok, examples = validate_rows(chunk, time_unit=time_unit, line_label="data row",
                                                line_numbers=np.arange(first_row, first_row + len(chunk)))
            report.add_malformed(int((~ok).sum()), examples)
            lines = np.flatnonzero(ok) + first_row  # source order, for ties
            writer.write_table(pa.Table.from_pandas(clean.assign(line=lines)[[*EVENT_COLUMNS, "line"]],
                                                    schema=SCRATCH_SCHEMA, preserve_index=False))
    con = connect(out / "duckdb_spill")
    try:
        con.execute(f"""COPY (SELECT user_id, item_id, event_timestamp FROM read_parquet({_quote(scratch)})
                              ORDER BY user_id, event_timestamp, line)
                        TO {_quote(out / 'events.parquet')} (FORMAT parquet)""")
        con.execute(f"""COPY (SELECT DISTINCT item_id, -1::BIGINT AS category, []::BIGINT[] AS attributes
                              FROM read_parquet({_quote(scratch)}) ORDER BY item_id)
                        TO {_quote(out / 'items.parquet')} (FORMAT parquet)""")
        report.n_valid, report.n_users, report.n_items = con.execute(
            f"SELECT count(*), count(DISTINCT user_id), count(DISTINCT item_id) FROM read_parquet("
            f"{_quote(scratch)})").fetchone()
    finally:
        con.close()
        shutil.rmtree(out / "duckdb_spill", ignore_errors=True)
        scratch.unlink(missing_ok=True)
    report.add_malformed(len(wrong_width), [f"{text} (wrong number of fields)" for text in wrong_width[:5]])
    report.n_rows += len(wrong_width)
    (out / "ingest_report.json").write_text(json.dumps(report.to_dict(), indent=2))
    return report

