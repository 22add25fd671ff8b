"""The service's response log: one JSON object per line in rotate-able ``*.jsonl`` files of one folder.

    {"ts": "2025-01-01T12:00:00+00:00", "request_id": "…", "user_id": 7 | null, "history_len": 31,
     "model_version": "gemirec-simulator:abc", "interest_codes": [[3], [7], …], "interest_probs": [0.4, …],
     "items": [12, 40, …], "item_interest": [0, 2, -1, …], "latency_ms": 8.1}

``item_interest[j]`` is the index k of the interest whose query retrieved ``items[j]`` (-1: the plain user
vector u). The reader is the only place that parses these lines: a line that is not valid JSON or breaks the
contract is skipped and counted (with a few examples), never fatal, because one bad writer must not blind the
monitor. Lines are decoded and type-checked in one C pass (msgspec, which Evidently's UI server already
depends on) and gathered into flat arrays (CSR-style offsets): 100k responses cost no per-row pandas work.
"""

from __future__ import annotations

import json
import logging
import os
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import msgspec
import numpy as np

log = logging.getLogger(__name__)

MAX_EXAMPLES = 5


class ResponseLine(msgspec.Struct):
    """The contract's types, checked by msgspec in C while it decodes (bools are not ints, nulls only for
    user_id); fields it does not know are ignored, so writers can add fields without breaking readers."""

    ts: str
    request_id: str
    user_id: int | None
    history_len: Annotated[int, msgspec.Meta(ge=0)]
    model_version: str
    interest_codes: list[list[int]]
    interest_probs: list[float]
    items: list[int]
    item_interest: list[int]
    latency_ms: float


_DECODER = msgspec.json.Decoder(ResponseLine)


class CorruptLine(ValueError):
    pass


def parse_ts(value) -> datetime:
    """ISO-8601 → aware UTC datetime; a naive stamp is taken as UTC (what the contract promises)."""
    if not isinstance(value, str):
        raise CorruptLine("ts is not a string")
    try:
        ts = datetime.fromisoformat(value)
    except ValueError as e:
        raise CorruptLine(f"ts {value!r} is not ISO-8601") from e
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def parse_line(line: str | bytes) -> tuple[ResponseLine, datetime]:
    """Decode and check one log line; CorruptLine says why it breaks the contract."""
    try:
        r = _DECODER.decode(line)
    except msgspec.MsgspecError as e:
        raise CorruptLine(str(e)) from e
    ts = parse_ts(r.ts)
    if len(r.interest_probs) != len(r.interest_codes):
        raise CorruptLine("interest_probs is not one number per interest code")
    via = r.item_interest
    if len(via) != len(r.items) or (via and (min(via) < -1 or max(via) >= len(r.interest_codes))):
        raise CorruptLine("item_interest is not one interest index in [-1, K) per item")
    return r, ts


@dataclass
class LogWindow:
    """Responses of one time window, flattened. Request r owns interests ``interest_offsets[r]:[r+1]`` and
    items ``item_offsets[r]:[r+1]``."""

    ts: np.ndarray  # (R,) datetime64[ns] UTC
    history_len: np.ndarray  # (R,) int64
    latency_ms: np.ndarray  # (R,) float64
    model_version: np.ndarray  # (R,) object
    interest_codes: list[tuple[int, ...]]  # (I,) one code path per generated interest
    interest_probs: np.ndarray  # (I,) float64
    interest_offsets: np.ndarray  # (R + 1,)
    items: np.ndarray  # (N,) int64 source item ids
    item_interest: np.ndarray  # (N,) int64, -1 = u
    item_offsets: np.ndarray  # (R + 1,)
    n_lines: int = 0
    n_corrupt: int = 0
    n_outside: int = 0  # valid lines outside the time window
    corrupt_examples: list[str] = field(default_factory=list)

    @property
    def n_requests(self) -> int:
        return len(self.history_len)

    def summary(self) -> dict:
        return {"n_lines": self.n_lines, "n_requests": self.n_requests, "n_corrupt": self.n_corrupt,
                "n_outside": self.n_outside, "corrupt_examples": list(self.corrupt_examples)}


def log_files(folder: str | Path, since: datetime | None = None) -> list[Path]:
    """``*.jsonl`` files in name order; a file last written before ``since`` cannot hold lines in the window
    (responses are appended in time order), so it is not opened at all."""
    files = sorted(Path(folder).glob("*.jsonl"))
    if since is not None:
        cutoff = since.timestamp()
        files = [f for f in files if _mtime(f) >= cutoff]
    return files


def _mtime(path: Path) -> float:
    try:
        return os.stat(path).st_mtime
    except FileNotFoundError:  # pruned by its writer since the listing: nothing to read
        return float("-inf")


def _lines(files: Iterable[Path]) -> Iterator[tuple[str, bytes]]:
    for path in files:
        try:
            handle = open(path, "rb")  # noqa: SIM115 - closed by the with below
        except FileNotFoundError:  # each worker prunes its own old files: one may go between list and open
            continue
        with handle:  # bytes: msgspec decodes them directly, bad UTF-8 is a bad line
            for number, line in enumerate(handle, start=1):
                if not line.endswith(b"\n"):
                    break  # the service is still writing this last line: the next run reads it whole
                if line.strip():
                    yield f"{path.name}:{number}", line


def read_window(folder: str | Path, since: datetime | None = None, until: datetime | None = None
                ) -> LogWindow:
    """Parse every response with ``since <= ts < until`` from the folder's log files."""
    ts, hist, lat, versions, codes, k_counts, n_counts = [], [], [], [], [], [], []
    probs, items, via = array("d"), array("q"), array("q")
    n_lines = n_corrupt = n_outside = 0
    examples: list[str] = []
    for where, line in _lines(log_files(folder, since) if Path(folder).exists() else []):
        n_lines += 1
        try:
            r, t = parse_line(line)
        except CorruptLine as e:
            n_corrupt += 1
            if len(examples) < MAX_EXAMPLES:
                examples.append(f"{where}: {e}")
            continue
        if (since is not None and t < since) or (until is not None and t >= until):
            n_outside += 1
            continue
        ts.append(t.replace(tzinfo=None))
        hist.append(r.history_len)
        lat.append(r.latency_ms)
        versions.append(r.model_version)
        codes.extend(map(tuple, r.interest_codes))
        k_counts.append(len(r.interest_codes))
        probs.extend(r.interest_probs)
        items.extend(r.items)
        via.extend(r.item_interest)
        n_counts.append(len(r.items))
    if n_corrupt:
        log.warning("%s: skipped %d corrupt log lines of %d, e.g. %s", folder, n_corrupt, n_lines,
                    "; ".join(examples[:2]))
    return LogWindow(
        ts=np.array(ts, dtype="datetime64[ns]"),
        history_len=np.asarray(hist, dtype=np.int64), latency_ms=np.asarray(lat, dtype=np.float64),
        model_version=np.asarray(versions, dtype=object),
        interest_codes=codes, interest_probs=np.frombuffer(probs, dtype=np.float64),
        interest_offsets=np.concatenate([[0], np.cumsum(k_counts, dtype=np.int64)]),
        items=np.frombuffer(items, dtype=np.int64), item_interest=np.frombuffer(via, dtype=np.int64),
        item_offsets=np.concatenate([[0], np.cumsum(n_counts, dtype=np.int64)]),
        n_lines=n_lines, n_corrupt=n_corrupt, n_outside=n_outside, corrupt_examples=examples)


def response_record(ts: datetime, request_id: str, user_id: int | None, history_len: int, model_version: str,
                    interest_codes, interest_probs, items, item_interest, latency_ms: float) -> dict:
    """One log line as the contract spells it (what the service and the scenario write)."""
    return {"ts": ts.astimezone(UTC).isoformat(), "request_id": request_id, "user_id": user_id,
            "history_len": int(history_len), "model_version": model_version,
            "interest_codes": [[int(c) for c in np.atleast_1d(codes)] for codes in interest_codes],
            "interest_probs": [round(float(p), 6) for p in interest_probs],
            "items": [int(i) for i in items], "item_interest": [int(k) for k in item_interest],
            "latency_ms": round(float(latency_ms), 3)}


class LogWriter:
    """Append JSON lines to ``<folder>/<prefix>-<n>.jsonl``, starting a new file past ``max_lines``: small
    files let the reader skip whole files that are older than its window."""

    def __init__(self, folder: str | Path, prefix: str = "responses", max_lines: int = 50_000):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.prefix, self.max_lines = prefix, max_lines
        existing = sorted(self.folder.glob(f"{prefix}-*.jsonl"))
        self.part = len(existing)
        self.lines = self.max_lines  # open a fresh file on the first write
        self.handle = None

    def write(self, record: dict) -> None:
        if self.lines >= self.max_lines:
            self._rotate()
        self.handle.write(json.dumps(record, separators=(",", ":")) + "\n")
        self.lines += 1

    def write_raw(self, line: str) -> None:
        """A line as given (the scenario uses it to plant corrupt lines)."""
        if self.lines >= self.max_lines:
            self._rotate()
        self.handle.write(line.rstrip("\n") + "\n")
        self.lines += 1

    def _rotate(self) -> None:
        self.close()
        self.handle = open(self.folder / f"{self.prefix}-{self.part:05d}.jsonl", "a", encoding="utf-8")  # noqa: SIM115
        self.part += 1
        self.lines = 0

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()
            self.handle = None

    def __enter__(self) -> LogWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
