"""Canonical interaction data: the one shape every reader, the simulator and the feature store agree on.

``events``: user_id int64, item_id int64, event_timestamp datetime64[ns, UTC], sorted by
(user_id, event_timestamp) with ties in source order. ``items``: item_id int64, category int64 (-1 unknown),
attributes (list of int). Ids are the source's own ids; nothing here remaps them.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

logger = logging.getLogger(__name__)

EVENT_COLUMNS = ["user_id", "item_id", "event_timestamp"]
ITEM_COLUMNS = ["item_id", "category", "attributes"]
UNKNOWN_CATEGORY = -1
MAX_EXAMPLES = 5
# Order-only sources get synthetic times from here on; a fixed epoch keeps ingestion reproducible.
DERIVED_EPOCH = pd.Timestamp("2020-01-01", tz="UTC")
TIMESTAMP_DTYPE = "datetime64[ns, UTC]"

EVENTS_SCHEMA = pa.schema(
    [("user_id", pa.int64()), ("item_id", pa.int64()), ("event_timestamp", pa.timestamp("ns", tz="UTC"))]
)
ITEMS_SCHEMA = pa.schema(
    [("item_id", pa.int64()), ("category", pa.int64()), ("attributes", pa.list_(pa.int64()))]
)


PathLike = str | Path


class IngestError(ValueError):
    """A source cannot be read at all (missing file, unrecognisable format). Bad lines are not errors."""


@dataclass
class IngestReport:
    source: str
    format: str
    n_rows: int = 0
    n_valid: int = 0
    n_malformed: int = 0
    malformed_examples: list[str] = field(default_factory=list)
    timestamps_derived: bool = False
    n_users: int = 0
    n_items: int = 0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def add_malformed(self, count: int, examples: list[str]) -> None:
        self.n_malformed += count
        room = MAX_EXAMPLES - len(self.malformed_examples)
        self.malformed_examples.extend(examples[: max(room, 0)])


@dataclass
class Interactions:
    events: pd.DataFrame
    items: pd.DataFrame
    report: IngestReport

    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(events_to_arrow(self.events), folder / "events.parquet")
        pq.write_table(items_to_arrow(self.items), folder / "items.parquet")
        (folder / "ingest_report.json").write_text(json.dumps(self.report.to_dict(), indent=2))

    @classmethod
    def load(cls, folder: str | Path) -> Interactions:
        folder = Path(folder)
        events = pq.read_table(folder / "events.parquet").to_pandas()
        items_table = pq.read_table(folder / "items.parquet")
        report = IngestReport(**json.loads((folder / "ingest_report.json").read_text()))
        return cls(events=_canonical_events(events), items=_items_from_arrow(items_table), report=report)

    def data_hash(self) -> str:
        """sha256 over the canonical content; dtypes are fixed so equal data hashes equally on any run."""
        digest = hashlib.sha256()
        for column in ("user_id", "item_id"):
            digest.update(self.events[column].to_numpy(dtype="<i8").tobytes())
        digest.update(timestamps_ns(self.events["event_timestamp"]).astype("<i8").tobytes())
        items = self.items.sort_values("item_id", kind="stable")
        digest.update(items["item_id"].to_numpy(dtype="<i8").tobytes())
        digest.update(items["category"].to_numpy(dtype="<i8").tobytes())
        lengths = np.array([len(a) for a in items["attributes"]], dtype="<i8")
        flat = np.concatenate(
            [np.asarray(a, dtype="<i8") for a in items["attributes"]] + [np.empty(0, "<i8")]
        )
        digest.update(lengths.tobytes())
        digest.update(flat.tobytes())
        return digest.hexdigest()


def timestamps_ns(series: pd.Series) -> np.ndarray:
    """Epoch nanoseconds; going through naive UTC avoids pandas' object array for tz-aware values."""
    naive = series.astype(TIMESTAMP_DTYPE).dt.tz_convert(None)
    return naive.to_numpy(dtype="datetime64[ns]").view("int64")


def events_to_arrow(events: pd.DataFrame) -> pa.Table:
    return pa.Table.from_pandas(events[EVENT_COLUMNS], schema=EVENTS_SCHEMA, preserve_index=False)


def items_to_arrow(items: pd.DataFrame) -> pa.Table:
    # An explicit list type: with only empty lists pyarrow would infer list<null>.
    return pa.table(
        {
            "item_id": pa.array(items["item_id"].to_numpy(dtype="int64")),
            "category": pa.array(items["category"].to_numpy(dtype="int64")),
            "attributes": pa.array(
                [list(map(int, a)) for a in items["attributes"]], type=pa.list_(pa.int64())
            ),
        },
        schema=ITEMS_SCHEMA,
    )


def _items_from_arrow(table: pa.Table) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "item_id": table.column("item_id").to_numpy().astype("int64"),
            "category": table.column("category").to_numpy().astype("int64"),
            "attributes": table.column("attributes").to_pylist(),
        }
    )


def _canonical_events(events: pd.DataFrame) -> pd.DataFrame:
    times = events["event_timestamp"]
    if not isinstance(times.dtype, pd.DatetimeTZDtype):
        times = times.dt.tz_localize("UTC")
    return pd.DataFrame(
        {
            "user_id": events["user_id"].to_numpy(dtype="int64"),
            "item_id": events["item_id"].to_numpy(dtype="int64"),
            "event_timestamp": timestamps_from_ns(timestamps_ns(times)),
        }
    )


def timestamps_from_ns(ns: np.ndarray) -> pd.Series:
    return pd.Series(
        pd.DatetimeIndex(np.asarray(ns, dtype="int64").view("datetime64[ns]")).tz_localize("UTC")
    )


def derive_timestamps(positions: np.ndarray) -> pd.Series:
    """Order-only sources: epoch + position seconds, so the order survives every later sort by time."""
    seconds = np.asarray(positions, dtype="int64") * 1_000_000_000
    return timestamps_from_ns(DERIVED_EPOCH.value + seconds)


def positions_within_user(user_ids: np.ndarray) -> np.ndarray:
    """0, 1, 2, ... per user in the given (source) order."""
    return pd.Series(user_ids).groupby(user_ids, sort=False).cumcount().to_numpy(dtype="int64")


def build_interactions(
    events: pd.DataFrame, items: pd.DataFrame | None, report: IngestReport
) -> Interactions:
    """Sort stably, complete the item table, and fill the report's counts."""
    users = events["user_id"].to_numpy(dtype="int64")
    item_ids = events["item_id"].to_numpy(dtype="int64")
    times = timestamps_ns(events["event_timestamp"])
    order = np.lexsort((times, users))  # lexsort is stable: ties keep source order
    canonical = pd.DataFrame(
        {
            "user_id": users[order],
            "item_id": item_ids[order],
            "event_timestamp": timestamps_from_ns(times[order]),
        }
    )
    report.n_valid = len(canonical)
    report.n_users = int(pd.unique(users).size)
    report.n_items = int(pd.unique(item_ids).size)
    return Interactions(events=canonical, items=complete_items(items, item_ids), report=report)


def complete_items(items: pd.DataFrame | None, event_item_ids: np.ndarray) -> pd.DataFrame:
    """Known items plus every item that occurs in events, one row each, sorted by id."""
    if items is None:
        items = pd.DataFrame(
            {"item_id": np.empty(0, "int64"), "category": np.empty(0, "int64"), "attributes": []}
        )
    items = items.drop_duplicates("item_id", keep="first")
    missing = np.setdiff1d(pd.unique(event_item_ids), items["item_id"].to_numpy(dtype="int64"))
    if missing.size:
        extra = pd.DataFrame(
            {
                "item_id": missing.astype("int64"),
                "category": np.full(missing.size, UNKNOWN_CATEGORY, "int64"),
                "attributes": [[] for _ in range(missing.size)],
            }
        )
        items = pd.concat([items, extra], ignore_index=True)
    items = items.sort_values("item_id", kind="stable").reset_index(drop=True)
    return pd.DataFrame(
        {
            "item_id": items["item_id"].to_numpy(dtype="int64"),
            "category": items["category"].to_numpy(dtype="int64"),
            "attributes": [list(map(int, a)) for a in items["attributes"]],
        }
    )


def _integral_ids(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(values as int64, ok mask). Floats must be whole; strings must parse; negatives are rejected."""
    if pd.api.types.is_integer_dtype(column.dtype) and not pd.api.types.is_extension_array_dtype(
        column.dtype
    ):
        values = column.to_numpy(dtype="int64")
        return values, values >= 0
    numeric = pd.to_numeric(column, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    ok = np.isfinite(numeric) & (numeric == np.round(numeric)) & (numeric >= 0) & (numeric < 2**63)
    values = np.where(ok, numeric, 0).astype("int64")
    if not pd.api.types.is_float_dtype(column.dtype) and (numeric[ok] > 2**53).any():
        # ids beyond 2**53 lose precision through float64: re-parse the good ones exactly as integers
        exact = pd.to_numeric(column[ok], errors="coerce", downcast=None)
        if pd.api.types.is_integer_dtype(exact.dtype):
            values[ok] = exact.to_numpy(dtype="int64")
    return values, ok


def parse_timestamps(column: pd.Series, unit: str = "s") -> pd.Series:
    """Numbers are epoch times in ``unit``; strings are ISO-like dates; anything else becomes NaT."""
    if isinstance(column.dtype, pd.DatetimeTZDtype):
        return column.dt.tz_convert("UTC").astype(TIMESTAMP_DTYPE)
    if pd.api.types.is_datetime64_dtype(column.dtype):
        return column.dt.tz_localize("UTC").astype(TIMESTAMP_DTYPE)
    numeric = pd.to_numeric(column, errors="coerce")
    out = pd.to_datetime(numeric, unit=unit, utc=True, errors="coerce")
    text = column[numeric.isna() & column.notna()]
    if len(text):
        parsed = pd.to_datetime(text.astype(str), utc=True, errors="coerce", format="ISO8601")
        retry = parsed.isna()
        if retry.any():
            parsed[retry] = pd.to_datetime(text[retry].astype(str), utc=True, errors="coerce", format="mixed")
        out[text.index] = parsed
    return out.astype(TIMESTAMP_DTYPE)


def validate_events(df: pd.DataFrame, *, time_unit: str = "s") -> tuple[pd.DataFrame, int, list[str]]:
    """Keep the rows of a user_id/item_id/event_timestamp table that parse; count and describe the rest.

    Nulls, non-integer or negative ids and unparsable timestamps make a row malformed, never an error.
    Examples read "line N: <values> (<reason>)" with N the 1-based row position.
    """
    clean, ok, examples = validate_rows(df, time_unit=time_unit)
    return clean, int((~ok).sum()), examples


def validate_rows(
    df: pd.DataFrame,
    *,
    time_unit: str = "s",
    line_numbers: np.ndarray | None = None,
    row_text: Callable[[np.ndarray], list[str]] | None = None,
    time_reason: str = "bad timestamp",
    line_label: str = "line",
) -> tuple[pd.DataFrame, np.ndarray, list[str]]:
    """validate_events for readers: also returns the kept-row mask and quotes rows as the source has them."""
    missing = [c for c in EVENT_COLUMNS if c not in df.columns]
    if missing:
        raise IngestError(f"events table: expected columns {EVENT_COLUMNS}, missing {missing}")
    df = df.reset_index(drop=True)  # row positions, not labels, from here on
    users, users_ok = _integral_ids(df["user_id"])
    items, items_ok = _integral_ids(df["item_id"])
    times = parse_timestamps(df["event_timestamp"], unit=time_unit)
    times_ok = times.notna().to_numpy()
    ok = users_ok & items_ok & times_ok
    examples = []
    shown = np.flatnonzero(~ok)[:MAX_EXAMPLES]
    texts = (
        row_text(shown)
        if row_text is not None
        else [" ".join(map(str, df.iloc[r][EVENT_COLUMNS])) for r in shown]
    )
    for row, text in zip(shown, texts):
        checks = (("bad user_id", users_ok), ("bad item_id", items_ok), (time_reason, times_ok))
        reasons = ", ".join(name for name, flag in checks if not flag[row])
        line = int(line_numbers[row]) if line_numbers is not None else int(row) + 1
        examples.append(f"{line_label} {line}: {text} ({reasons})")
    clean = pd.DataFrame(
        {
            "user_id": users[ok],
            "item_id": items[ok],
            "event_timestamp": timestamps_from_ns(timestamps_ns(times)[ok]),
        }
    )
    return clean, ok, examples


# ---------------------------------------------------------------- source files (plain or .gz)


def resolve(path: PathLike) -> Path:
    """The file itself, or its ``.gz`` twin."""
    path = Path(path)
    if path.is_file():
        return path
    zipped = path.with_name(path.name + ".gz")
    if zipped.is_file():
        return zipped
    raise IngestError(f"{path}: file not found (also looked for {zipped.name})")


def base_name(path: PathLike) -> str:
    """File name without a trailing .gz, for messages and format detection."""
    name = Path(path).name
    return name[:-3] if name.endswith(".gz") else name


def read_text(path: PathLike, encoding: str = "utf-8") -> str:
    path = resolve(path)
    raw = gzip.open(path, "rb").read() if path.name.endswith(".gz") else path.read_bytes()
    return raw.decode(encoding, errors="replace")


def head_lines(path: PathLike, n: int = 5) -> list[str]:
    path = resolve(path)
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as handle:
        return [line.rstrip("\r\n") for _, line in zip(range(n), handle)]


def lines_at(path: Path, numbers: Sequence[int]) -> dict[int, str]:
    """The text of a few lines, for quoting rows that a parser skipped."""
    wanted, found = set(numbers), {}
    if not wanted:
        return found
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            if number in wanted:
                found[number] = line.rstrip("\r\n")[:120]
                if len(found) == len(wanted):
                    break
    return found
