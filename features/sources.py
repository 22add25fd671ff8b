"""Feast's offline sources built from the canonical event log in batches, in memory bounded by the batch.

The online store only ever serves each user's latest history, so ``user_history`` holds one row per user
(their last ``history_items`` items, stamped with their last event's time) instead of one row per event:
the source shrinks from about ``history_items`` × the log to about ``history_items`` × the users, and
materializing it writes the same online values. ``item_profile`` holds one row per item, stamped when the
item first appears. Both are computed in one pass over ``events.parquet``: the log is canonical (sorted by
user, then time), so a user's events are one contiguous run and only the run that straddles a batch
boundary is carried over to the next batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

TS = pa.timestamp("us", tz="UTC")
SOURCE_SCHEMAS = {
    "user_history": pa.schema([("user_id", pa.int64()), ("item_ids", pa.list_(pa.int64())),
                               ("history_length", pa.int64()), ("last_event_time", TS),
                               ("event_timestamp", TS), ("created", TS)]),
    "item_profile": pa.schema([("item_id", pa.int64()), ("category", pa.int64()),
                               ("attributes", pa.list_(pa.int64())), ("popularity", pa.int64()),
                               ("event_timestamp", TS), ("created", TS)]),
    "item_interest": pa.schema([("item_id", pa.int64()), ("interest_code", pa.list_(pa.int64())),
                                ("model_version", pa.string()), ("event_timestamp", TS), ("created", TS)]),
}
BATCH_ROWS = 1_000_000  # events per batch: about 24 MB of columns, a few times that while processing


class NotCanonical(ValueError):
    """The log is not sorted by (user_id, event_timestamp); write it with Interactions.save first."""


@dataclass
class EventBatch:
    users: np.ndarray  # int64
    items: np.ndarray  # int64
    times_us: np.ndarray  # int64 microseconds since the epoch, UTC

    def __len__(self) -> int:
        return len(self.users)

    def __getitem__(self, rows) -> EventBatch:
        return EventBatch(self.users[rows], self.items[rows], self.times_us[rows])

    @staticmethod
    def concat(parts: list[EventBatch]) -> EventBatch:
        return EventBatch(*(np.concatenate([getattr(p, f) for p in parts])
                            for f in ("users", "items", "times_us")))


def iter_events(path: Path, batch_rows: int = BATCH_ROWS) -> Iterator[EventBatch]:
    """events.parquet in batches of plain arrays; timestamps as epoch microseconds (Feast's unit)."""
    for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows,
                                                   columns=["user_id", "item_id", "event_timestamp"]):
        times = batch.column(2).cast(pa.int64()).to_numpy(zero_copy_only=False)
        if batch.schema.field(2).type.unit == "ns":
            times = times // 1000
        yield EventBatch(batch.column(0).to_numpy(zero_copy_only=False).astype(np.int64, copy=False),
                         batch.column(1).to_numpy(zero_copy_only=False).astype(np.int64, copy=False),
                         times)


def _check_canonical(events: EventBatch) -> None:
    users, times = events.users, events.times_us
    bad = (users[1:] < users[:-1]) | ((users[1:] == users[:-1]) & (times[1:] < times[:-1]))
    if bad.any():
        row = int(np.flatnonzero(bad)[0]) + 1
        raise NotCanonical(f"events out of (user, time) order near user {users[row]}")


def _created(n: int, created: datetime) -> pa.Array:
    stamp = int(pd.Timestamp(created).tz_convert("UTC").value // 1000)
    return pa.array(np.full(n, stamp, dtype=np.int64)).cast(TS)


def history_tails(events: EventBatch, history_items: int, earlier: int = 0) -> pa.Table:
    """One row per user run in ``events``: the run's last ``history_items`` items, oldest first.

    ``earlier`` counts the first run's events that lie before ``events`` (carried across batches), so that
    history_length counts the whole history, not only what this batch holds."""
    users = events.users
    n = len(users)
    last = np.flatnonzero(np.r_[users[1:] != users[:-1], True]) if n else np.zeros(0, np.int64)
    first = np.r_[0, last[:-1] + 1]
    run_end = np.repeat(last, last - first + 1)
    keep = run_end - np.arange(n) < history_items  # the run's last history_items rows
    counts = last - first + 1
    if n:
        counts[0] += earlier
    kept = np.minimum(last - first + 1, history_items)
    offsets = np.r_[0, np.cumsum(kept)].astype(np.int32)
    when = pa.array(events.times_us[last]).cast(TS)
    return pa.table({
        "user_id": pa.array(users[last]),
        "item_ids": pa.ListArray.from_arrays(pa.array(offsets), pa.array(events.items[keep])),
        "history_length": pa.array(counts.astype(np.int64)),
        "last_event_time": when,
        "event_timestamp": when,
        "created": pa.nulls(len(last), TS),  # stamped by the caller, once per write
    }, schema=SOURCE_SCHEMAS["user_history"])


def iter_latest_histories(batches: Iterator[EventBatch], history_items: int, created: datetime
                          ) -> Iterator[pa.Table]:
    """user_history rows, one per user, for a canonical log given in batches."""
    carry: EventBatch | None = None  # the last user's tail, which the next batch may continue
    carried_before = 0  # that user's events older than the carried tail
    for batch in batches:
        events = batch if carry is None else EventBatch.concat([carry, batch])
        _check_canonical(events)
        if not len(events):
            continue
        tail_start = int(np.searchsorted(events.users, events.users[-1], side="left"))
        done = events[slice(0, tail_start)]
        tail = events[slice(tail_start, None)]
        if len(done):
            table = history_tails(done, history_items, carried_before)
            yield table.set_column(5, "created", _created(table.num_rows, created))
            carried_before = 0
        carried_before += max(0, len(tail) - history_items)
        carry = tail[slice(max(0, len(tail) - history_items), None)]
    if carry is not None and len(carry):
        table = history_tails(carry, history_items, carried_before)
        yield table.set_column(5, "created", _created(table.num_rows, created))


def latest_history_table(events: pd.DataFrame, history_items: int, created: datetime) -> pa.Table:
    """The same rows for an in-memory canonical events frame."""
    from features.events import timestamps_ns

    batch = EventBatch(events["user_id"].to_numpy(dtype=np.int64), events["item_id"].to_numpy(dtype=np.int64),
                       timestamps_ns(events["event_timestamp"]) // 1000)
    tables = list(iter_latest_histories(iter([batch]), history_items, created))
    return pa.concat_tables(tables) if tables else SOURCE_SCHEMAS["user_history"].empty_table()


class ItemCounter:
    """First time seen and number of events per item id, merged batch by batch (memory ∝ items)."""

    def __init__(self) -> None:
        self.stats = pd.DataFrame({"first": pd.Series(dtype=np.int64), "count": pd.Series(dtype=np.int64)})

    def add(self, events: EventBatch) -> None:
        part = pd.DataFrame({"item": events.items, "time": events.times_us}).groupby("item")["time"]
        part = pd.DataFrame({"first": part.min(), "count": part.size()})
        merged = pd.concat([self.stats, part]).groupby(level=0)
        self.stats = pd.DataFrame({"first": merged["first"].min(), "count": merged["count"].sum()})


def item_profile_from(counter: ItemCounter, items: pd.DataFrame, created: datetime) -> pa.Table:
    """One row per item that occurs in the log, stamped at its first event; -1/[] where not catalogued."""
    stats = counter.stats.sort_index()
    ids = stats.index.to_numpy(dtype=np.int64)
    known = items.drop_duplicates("item_id").set_index("item_id").reindex(ids)
    category = known["category"].fillna(-1).to_numpy(dtype=np.int64)
    attributes = [list(map(int, a)) if isinstance(a, list | np.ndarray) else [] for a in known["attributes"]]
    return pa.table({
        "item_id": pa.array(ids),
        "category": pa.array(category),
        "attributes": pa.array(attributes, type=pa.list_(pa.int64())),
        "popularity": pa.array(stats["count"].to_numpy(dtype=np.int64)),
        "event_timestamp": pa.array(stats["first"].to_numpy(dtype=np.int64)).cast(TS),
        "created": _created(len(ids), created),
    }, schema=SOURCE_SCHEMAS["item_profile"])


def write_streamed(data_folder: Path, history_path: Path, history_items: int, created: datetime,
                   batch_rows: int = BATCH_ROWS) -> tuple[int, pa.Table]:
    """Stream ``data_folder/events.parquet`` once: user_history rows go to ``history_path`` as they are
    made; the item profile (memory ∝ items) is returned. Returns (history rows written, profile)."""
    from features.events import _items_from_arrow

    counter = ItemCounter()
    rows = 0

    def counted(batches: Iterator[EventBatch]) -> Iterator[EventBatch]:
        for batch in batches:
            counter.add(batch)
            yield batch

    tmp = history_path.with_suffix(".tmp")
    with pq.ParquetWriter(tmp, SOURCE_SCHEMAS["user_history"]) as writer:
        for table in iter_latest_histories(counted(iter_events(data_folder / "events.parquet", batch_rows)),
                                           history_items, created):
            writer.write_table(table)
            rows += table.num_rows
    tmp.replace(history_path)
    items = _items_from_arrow(pq.read_table(data_folder / "items.parquet"))
    return rows, item_profile_from(counter, items, created)


def time_windows(times: pa.ChunkedArray | pa.Array, start: datetime, end: datetime, rows: int
                 ) -> list[tuple[datetime, datetime]]:
    """Consecutive [start, end) windows that each hold about ``rows`` of a source's rows, in time order.

    Feast's local materialization loads a whole window's rows before it writes them, so one window over
    a source of 250k user histories held ~1.7 GB. Each row of ``user_history`` is a user's latest state,
    so a user falls in exactly one window; an item whose profile has several rows gets them written
    window by window in time order, the latest last: the online values are those of one big window.
    """
    if rows <= 0 or len(times) <= rows:
        return [(start, end)]
    if isinstance(times, pa.ChunkedArray):
        times = times.combine_chunks()
    micros = np.sort(times.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64()).to_numpy())
    lo, hi = pd.Timestamp(start).value // 1_000, pd.Timestamp(end).value // 1_000
    cuts = [c for c in np.unique(micros[rows::rows]) if lo < c < hi]  # a window opens at every rows-th row
    bounds = [start, *(pd.Timestamp(int(c), unit="us", tz="UTC").to_pydatetime() for c in cuts), end]
    return list(zip(bounds[:-1], bounds[1:], strict=True))
