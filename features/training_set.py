"""The point-in-time training set as one DuckDB query over Feast's offline sources, streamed to parquet.

Feast's file offline store does this join in dask with an in-memory entity frame and collapses rows
that share a join key and time (feast-dev/feast#6787), so it costs a few times the log in memory. Here
DuckDB runs the same rule as an ASOF join over the parquet files the feature views declare, with a memory
limit past which it spills to disk. The rule is Feast's, with the views' ttl 0: an event sees the latest
feature row at or before its own time; rows with the same time are told apart by ``created``; an event
with no such row gets nulls. tests/features/test_training_set.py checks it row for row against Feast's
own join.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa

# design choice (not from the paper): two threads and a fixed memory cap, past which DuckDB spills to
# disk; the 2-core machine is shared, and the cap is what keeps the stage bounded whatever the log size
DUCKDB_THREADS = 2
DUCKDB_MEMORY = "1GB"
SERVICE_FEATURES = ("category", "attributes")  # gemirec_training_v1: item_profile[category, attributes]


@dataclass(frozen=True)
class TrainingSetSummary:
    rows: int
    users: int
    items: int
    items_without_profile: int


def connect(spill_dir: Path):
    import duckdb

    spill_dir.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute(f"SET threads = {DUCKDB_THREADS}")
    con.execute(f"SET memory_limit = '{DUCKDB_MEMORY}'")
    con.execute(f"SET temp_directory = '{spill_dir}'")
    con.execute("SET preserve_insertion_order = true")
    return con


def _quote(path: Path) -> str:
    return "'" + str(Path(path).resolve()).replace("'", "''") + "'"


def _join_sql(events_relation: str, profile_path: Path) -> str:
    """Every event with the item profile visible at its time, in the events' own order (column row_)."""
    features = ", ".join(f"p.{f}" for f in SERVICE_FEATURES)
    return f"""
        WITH profile AS (
            SELECT item_id, {", ".join(SERVICE_FEATURES)}, epoch_ns(event_timestamp) // 1000 AS feature_us
            FROM read_parquet({_quote(profile_path)})
            QUALIFY row_number() OVER (PARTITION BY item_id, event_timestamp ORDER BY created DESC) = 1
        ), events AS (
            SELECT user_id, item_id, event_timestamp, row_, epoch_ns(event_timestamp) // 1000 AS event_us
            FROM {events_relation}
        )
        SELECT e.user_id, e.item_id, e.event_timestamp, {features}
        FROM events e ASOF LEFT JOIN profile p
          ON e.item_id = p.item_id AND e.event_us >= p.feature_us
        ORDER BY e.row_
    """


def rows_frame(events: pd.DataFrame, profile_path: Path, spill_dir: Path) -> pd.DataFrame:
    """The join for an in-memory events frame: one row per event, in the frame's order."""
    con = connect(spill_dir)
    frame = events[["user_id", "item_id", "event_timestamp"]].reset_index(drop=True)
    con.register("events_in", pa.Table.from_pandas(frame.assign(row_=range(len(frame))),
                                                   preserve_index=False))
    try:
        table = con.sql(_join_sql("events_in", profile_path)).to_arrow_table()
    finally:
        con.close()
    rows = table.to_pandas()  # null category -> NaN, null attributes -> None, as Feast's join gives
    rows["event_timestamp"] = rows["event_timestamp"].astype(events["event_timestamp"].dtype)
    return rows


def write_training_set(data_folder: Path, profile_path: Path, out: Path) -> TrainingSetSummary:
    """``out``: training_rows.parquet (one row per event with its point-in-time features), plus what the
    trainer loads (events.parquet, items.parquet with each item's latest visible profile, and
    ingest_report.json), written without holding the log in memory."""
    out.mkdir(parents=True, exist_ok=True)
    con = connect(out / "duckdb_spill")
    events = f"(SELECT *, file_row_number AS row_ FROM read_parquet({_quote(data_folder / 'events.parquet')}, " \
             "file_row_number = true))"
    rows_path = out / "training_rows.parquet"
    try:
        con.execute(f"COPY ({_join_sql(events, profile_path)}) TO {_quote(rows_path)} (FORMAT parquet)")
        # an item's side information for the trainer: what its latest event saw; unknown = (-1, [])
        con.execute(f"""
            COPY (
                SELECT item_id,
                       coalesce(arg_max(category, event_timestamp) FILTER (category IS NOT NULL), -1)
                           AS category,
                       coalesce(arg_max(attributes, event_timestamp) FILTER (category IS NOT NULL),
                                []::BIGINT[]) AS attributes
                FROM read_parquet({_quote(rows_path)}) GROUP BY item_id ORDER BY item_id
            ) TO {_quote(out / 'items.parquet')} (FORMAT parquet)""")
        rows = f"read_parquet({_quote(rows_path)})"
        n_rows, n_users = con.execute(f"SELECT count(*), count(DISTINCT user_id) FROM {rows}").fetchone()
        n_items, n_unknown = con.execute(f"""
            SELECT count(*), count(*) FILTER (seen = 0)
            FROM (SELECT item_id, count(category) AS seen FROM {rows} GROUP BY item_id)""").fetchone()
    finally:
        con.close()
        shutil.rmtree(out / "duckdb_spill", ignore_errors=True)
    shutil.copyfile(data_folder / "events.parquet", out / "events.parquet")  # the rows' events, unchanged
    report = json.loads((data_folder / "ingest_report.json").read_text())
    report.update(n_valid=n_rows, n_users=n_users, n_items=n_items)
    (out / "ingest_report.json").write_text(json.dumps(report, indent=2))
    return TrainingSetSummary(n_rows, n_users, n_items, n_unknown)
