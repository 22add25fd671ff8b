"""Fresh events into the feature store without re-materializing: the online history of each user they touch
is extended through Feast's push source (``user_history_push``), and the events are kept in the store's
offline log of pushed events for the next training run to read.

    report = push_events(StoreConfig(Path("runs/feature_store/simulator")), events)   # any user/item/time frame
    report.accepted, report.duplicates, report.rejected, report.malformed_examples
    pushed_events(cfg)                          # every event pushed so far (canonical events table)
    inter, n = with_pushed(inter, cfg)          # a training log plus the pushed events it lacks

Guarantees, and why:
- Malformed rows (bad ids, unparsable times) are counted and left out with examples; the rest go on. A table
  without the three columns is refused whole (``PushError``), before anything is written.
- Idempotent: an event is keyed by (user_id, item_id, event_timestamp); one already in the pushed log is a
  duplicate and changes nothing. The online history only grows by events newer than its ``last_event_time``,
  so a push retried after a failure between the two writes below cannot add an item twice.
- Never half-written: the online rows of a batch go in one Feast write, then the batch is added to the log as
  one parquet file, written beside its final name and renamed into place. A failed online write leaves both
  untouched; a failed log write leaves the online rows, which the retry sees as already there.
- Events older than a user's online history (late arrivals) are kept in the log, so the next training sees
  them in their place, but are not appended online: the online history is a list without times.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from feast.errors import PushSourceNotFoundException

from features.events import (
    EVENT_COLUMNS,
    EVENTS_SCHEMA,
    Interactions,
    build_interactions,
    events_to_arrow,
    timestamps_ns,
    validate_events,
)
from features.feature_repo import definitions
from features.store import StoreConfig, apply, open_store

log = logging.getLogger(__name__)

PUSH_SOURCE = definitions.user_history_push.name
LOG_FOLDER = "pushed_events"  # below the store's data folder: one parquet file per accepted batch
ALIASES = {"user": "user_id", "item": "item_id", "timestamp": "event_timestamp", "time": "event_timestamp"}
KEY = ["user_id", "item_id", "event_timestamp"]


class PushError(ValueError):
    """A batch that cannot be read as events at all; nothing of it was written."""


@dataclass
class PushReport:
    received: int = 0  # rows given
    accepted: int = 0  # new events: in the pushed log now
    duplicates: int = 0  # already pushed (same user, item, time), or repeated within the batch
    rejected: int = 0  # malformed rows, left out
    late: int = 0  # accepted, but older than the user's online history: in the log only
    users_updated: int = 0  # users whose online history grew
    malformed_examples: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def log_dir(cfg: StoreConfig):
    return cfg.source_dir / LOG_FOLDER


def push_events(cfg: StoreConfig, events: pd.DataFrame, *, time_unit: str = "s") -> PushReport:
    """Validate ``events`` (columns user_id, item_id, event_timestamp, or user/item/timestamp; numeric times in
    ``time_unit`` since the epoch), then add the new ones to the online histories and to the pushed log."""
    started = time.perf_counter()
    frame = events.rename(columns={k: v for k, v in ALIASES.items() if k in events.columns
                                   and v not in events.columns})
    missing = [c for c in EVENT_COLUMNS if c not in frame.columns]
    if missing:
        raise PushError(f"events need columns {EVENT_COLUMNS} (or user/item/timestamp); missing {missing}")
    clean, n_bad, examples = validate_events(frame[EVENT_COLUMNS], time_unit=time_unit)
    report = PushReport(received=len(frame), rejected=n_bad, malformed_examples=examples)
    unique = clean.drop_duplicates(KEY, ignore_index=True)
    report.duplicates = len(clean) - len(unique)
    with _locked(cfg):  # two pushers must not both read the same online history and extend it
        new = _not_yet_pushed(cfg, unique)
        report.duplicates += len(unique) - len(new)
        if len(new):
            report.users_updated, report.late = _write_online(cfg, new)
            _append_log(cfg, new)
        report.accepted = len(new)
    report.seconds = time.perf_counter() - started
    log.info("pushed %d new events (%d users updated online, %d late), %d duplicates, %d malformed in %.3f s",
             report.accepted, report.users_updated, report.late, report.duplicates, report.rejected,
             report.seconds)
    return report


def pushed_events(cfg: StoreConfig, users: np.ndarray | None = None) -> pd.DataFrame:
    """The pushed log as an events table (of ``users`` only, when given), sorted by user then time."""
    folder = log_dir(cfg)
    if not folder.exists() or not any(folder.glob("*.parquet")):
        return EVENTS_SCHEMA.empty_table().to_pandas()
    dataset = ds.dataset(folder, format="parquet", schema=EVENTS_SCHEMA)
    where = None if users is None else ds.field("user_id").isin(pa.array(users, type=pa.int64()))
    table = dataset.to_table(columns=EVENT_COLUMNS, filter=where)
    return table.to_pandas().sort_values(["user_id", "event_timestamp"], kind="stable", ignore_index=True)


def with_pushed(inter: Interactions, cfg: StoreConfig) -> tuple[Interactions, int]:
    """``inter`` plus the pushed events it does not already hold; returns the number added."""
    pushed = pushed_events(cfg)
    if pushed.empty:
        return inter, 0
    merged = pd.concat([inter.events, pushed], ignore_index=True)
    merged["event_timestamp"] = merged["event_timestamp"].astype(inter.events["event_timestamp"].dtype)
    merged = merged.drop_duplicates(KEY, ignore_index=True)
    added = len(merged) - len(inter.events)
    report = inter.report
    report.notes = [*report.notes, f"{added} pushed events from {log_dir(cfg)}"]
    return build_interactions(merged, inter.items, report), added


# ---------------------------------------------------------------- the two writes


@contextlib.contextmanager
def _locked(cfg: StoreConfig) -> Iterator[None]:
    cfg.source_dir.mkdir(parents=True, exist_ok=True)
    with open(cfg.source_dir / ".push.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _not_yet_pushed(cfg: StoreConfig, events: pd.DataFrame) -> pd.DataFrame:
    if events.empty:
        return events
    seen = pushed_events(cfg, pd.unique(events["user_id"]))
    if seen.empty:
        return events
    old = set(zip(seen["user_id"], seen["item_id"], timestamps_ns(seen["event_timestamp"]), strict=True))
    keys = zip(events["user_id"], events["item_id"], timestamps_ns(events["event_timestamp"]), strict=True)
    fresh = np.fromiter((key not in old for key in keys), dtype=bool, count=len(events))
    return events[fresh].reset_index(drop=True)


def _write_online(cfg: StoreConfig, events: pd.DataFrame) -> tuple[int, int]:
    """Extend each user's online history with its events newer than the stored ``last_event_time``; return
    (users updated, late events)."""
    store = open_store(cfg)
    users = [int(u) for u in pd.unique(events["user_id"])]
    current = store.get_online_features(
        features=["user_history:item_ids", "user_history:history_length", "user_history:last_event_time"],
        entity_rows=[{"user_id": u} for u in users]).to_dict()
    now = datetime.now(UTC)
    rows, late = [], 0
    ordered = events.sort_values(["user_id", "event_timestamp"], kind="stable")
    for user, mine in ordered.groupby("user_id", sort=False):
        at = users.index(int(user))
        items = list(current["item_ids"][at] or [])
        length = int(current["history_length"][at] or len(items))
        last = current["last_event_time"][at]
        if last is not None:
            newer = mine["event_timestamp"] > _utc(last)
            late += int((~newer).sum())
            mine = mine[newer]
        if mine.empty:
            continue
        when = mine["event_timestamp"].max().to_pydatetime()
        rows.append({"user_id": int(user),
                     "item_ids": [*items, *map(int, mine["item_id"])][-cfg.history_items:],
                     "history_length": length + len(mine), "last_event_time": when,
                     "event_timestamp": when, "created": now})
    if rows:
        frame = pd.DataFrame(rows)
        try:
            store.push(PUSH_SOURCE, frame)
        except PushSourceNotFoundException:  # a store applied before the push source was declared
            apply(cfg)
            open_store(cfg).push(PUSH_SOURCE, frame)
    return len(rows), late


def _utc(value) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    return stamp.tz_localize(UTC) if stamp.tzinfo is None else stamp.tz_convert(UTC)


def _append_log(cfg: StoreConfig, events: pd.DataFrame) -> None:
    folder = log_dir(cfg)
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{datetime.now(UTC):%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:8]}.parquet"
    tmp = folder / f".{name}.tmp"  # a dot file: the dataset reader above skips it
    pq.write_table(events_to_arrow(events), tmp)
    tmp.replace(folder / name)
