"""One reader per line-based source format (pairs, user sequences, sessions, user sets), and `READERS`,
every input format by name (the table formats live in `table_readers.py`); each returns canonical
``Interactions``.

Bad lines are counted and quoted in the report, never fatal; a missing file or an unrecognisable format
raises ``IngestError`` naming the file and what was expected. ``.gz`` files are read transparently.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from features.events import (
    MAX_EXAMPLES,
    UNKNOWN_CATEGORY,
    IngestError,
    IngestReport,
    Interactions,
    PathLike,
    base_name,
    build_interactions,
    derive_timestamps,
    positions_within_user,
    read_text,
    resolve,
)
from features.table_readers import (  # re-exported: callers read every format through this module
    DERIVED_NOTE,
)
from features.table_readers import (
    read_movielens_movies as read_movielens_movies,
)
from features.table_readers import (
    read_recbole_atomic as read_recbole_atomic,
)
from features.table_readers import (
    read_recbole_items as read_recbole_items,
)
from features.table_readers import (
    read_table as read_table,
)

# ---------------------------------------------------------------- whitespace-separated id lines


@dataclass
class LineScan:
    """Valid lines of integer tokens, flattened: ``values`` holds the tokens, ``lengths`` counts per line."""

    values: np.ndarray
    lengths: np.ndarray
    n_rows: int = 0
    n_malformed: int = 0
    examples: list[str] = field(default_factory=list)


def scan_int_lines(
    path: PathLike, min_tokens: int, max_tokens: int | None, expected: str, where: str = ""
) -> LineScan:
    """Parse lines of integer ids; ``where`` (e.g. ", test.txt") tells files apart in the examples."""
    name = base_name(path)
    kept: list[str] = []
    lengths: list[int] = []
    scan = LineScan(np.empty(0, "int64"), np.empty(0, "int64"))
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue  # blank lines carry nothing; not counted as rows
        scan.n_rows += 1
        reason = None
        if len(parts) < min_tokens or (max_tokens is not None and len(parts) > max_tokens):
            reason = f"expected {expected}, got {len(parts)} fields"
        else:
            joined = "".join(parts)
            # ascii digits only: the check must agree with numpy's parser; 18 digits always fit int64
            if not (joined.isascii() and joined.isdigit()) or max(map(len, parts)) > 18:
                reason = "non-integer id"
        if reason is not None:
            scan.n_malformed += 1
            if len(scan.examples) < MAX_EXAMPLES:
                scan.examples.append(f"line {number}: {line.strip()[:120]} ({reason}{where})")
            continue
        kept.append(line)
        lengths.append(len(parts))
    if scan.n_rows and not lengths:
        raise IngestError(f"{name}: expected {expected}; no line matched (first: {scan.examples[0]})")
    # one C-level parse of all kept lines: several times faster than converting token by token
    scan.values = np.fromstring(" ".join(kept), dtype="int64", sep=" ") if kept else np.empty(0, "int64")
    scan.lengths = np.array(lengths, dtype="int64")
    return scan


def _resolve_all(paths: PathLike | Sequence[PathLike]) -> list[Path]:
    return [resolve(p) for p in ([paths] if isinstance(paths, (str, Path)) else paths)]


def _where(path: Path, paths: Sequence[Path]) -> str:
    return f", {path.name}" if len(paths) > 1 else ""


def _split_heads(scan: LineScan) -> tuple[np.ndarray, np.ndarray]:
    """For ``head rest...`` lines: (head of each token's line, rest tokens), both flat in file order."""
    starts = np.cumsum(scan.lengths) - scan.lengths
    is_head = np.zeros(scan.values.size, dtype=bool)
    is_head[starts] = True
    heads = np.repeat(scan.values[starts], scan.lengths - 1)
    return heads, scan.values[~is_head]


def _ordered(users: np.ndarray, items: np.ndarray, positions: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"user_id": users, "item_id": items, "event_timestamp": derive_timestamps(positions)})


def read_pairs(path: PathLike) -> Interactions:
    """``user item`` per line (SASRec); order is file order within each user."""
    path = resolve(path)
    scan = scan_int_lines(path, 2, 2, "'user item' (2 integer ids)")
    users, items = scan.values[0::2], scan.values[1::2]
    report = _line_report([path], "pairs", [scan], f"{DERIVED_NOTE} within user, in file order")
    return build_interactions(_ordered(users, items, positions_within_user(users)), None, report)


def read_user_sequences(path: PathLike, attributes_path: PathLike | None = None) -> Interactions:
    """``user i1 i2 ...`` per line, items in time order (S3-Rec), optional item→attributes JSON."""
    path = resolve(path)
    scan = scan_int_lines(path, 2, None, "'user item item ...' (a user id and at least one item id)")
    users, items = _split_heads(scan)
    report = _line_report([path], "user-sequences", [scan], f"{DERIVED_NOTE} within user, in line order")
    item_table = None
    if attributes_path is not None:
        attributes_path = resolve(attributes_path)
        report.source += f", {attributes_path}"
        item_table = read_item_attributes(attributes_path, report)
    return build_interactions(_ordered(users, items, positions_within_user(users)), item_table, report)


def read_item_attributes(path: PathLike, report: IngestReport | None = None) -> pd.DataFrame:
    """``{"item": [attr, ...]}``. design choice (not from the paper): category = the FIRST listed attribute
    (S3-Rec lists the category ids before the brand for Amazon); attributes = all, duplicates kept."""
    path = resolve(path)
    expected = f"{base_name(path)}: expected a JSON object {{item_id: [attribute ids, ...]}}"
    try:
        mapping = json.loads(read_text(path))
        pairs = [(int(key), [int(a) for a in value]) for key, value in mapping.items()]
    except (json.JSONDecodeError, AttributeError, TypeError, ValueError) as error:
        raise IngestError(f"{expected} ({error})") from None
    if report is not None:
        report.notes.append(f"{base_name(path)}: category = first listed attribute; {len(pairs)} items")
    ids = np.array([key for key, _ in pairs], dtype="int64")
    categories = np.array([a[0] if a else UNKNOWN_CATEGORY for _, a in pairs], dtype="int64")
    return pd.DataFrame({"item_id": ids, "category": categories, "attributes": [a for _, a in pairs]})


def read_sessions(paths: PathLike | Sequence[PathLike]) -> Interactions:
    """One anonymous session per line; files are given in time order (e.g. train then test).

    Each session becomes a user (ids 1, 2, ... across files). Derived times follow the global order so that
    every session of a later file is later than all sessions of an earlier one.
    """
    paths = _resolve_all(paths)
    scans = [scan_int_lines(p, 1, None, "a session of integer item ids", _where(p, paths)) for p in paths]
    items = np.concatenate([s.values for s in scans])
    lengths = np.concatenate([s.lengths for s in scans])
    users = np.repeat(np.arange(1, lengths.size + 1, dtype="int64"), lengths)
    note = f"each session is a user; {DERIVED_NOTE} in global order over {[p.name for p in paths]}"
    report = _line_report(paths, "sessions", scans, note)
    return build_interactions(_ordered(users, items, np.arange(items.size)), None, report)


def read_user_sets(paths: PathLike | Sequence[PathLike], shuffle_seed: int | None = None) -> Interactions:
    """LightGCN ``user i1 i2 ...`` item sets without order (ids may start at 0); several files are merged.

    Order is unknown: items keep file order (earlier files first), or with ``shuffle_seed`` a seeded shuffle
    within each user and file, which removes the id-sorted order that LightGCN files carry.
    """
    paths = _resolve_all(paths)
    scans = [
        scan_int_lines(p, 1, None, "'user item item ...' (integer ids)", _where(p, paths)) for p in paths
    ]
    parts = [_split_heads(s) for s in scans]
    users = np.concatenate([u for u, _ in parts])
    items = np.concatenate([i for _, i in parts])
    file_index = np.concatenate([np.full(u.size, k) for k, (u, _) in enumerate(parts)])
    tiebreak = (
        np.arange(users.size)
        if shuffle_seed is None
        else np.random.default_rng(shuffle_seed).random(users.size)
    )
    order = np.lexsort((tiebreak, file_index, users))
    users, items = users[order], items[order]
    how = "file order" if shuffle_seed is None else f"a seeded shuffle (seed {shuffle_seed})"
    note = (
        f"source has NO order: sequence order is arbitrary ({how} within user, files in order "
        f"{[p.name for p in paths]}); {DERIVED_NOTE} within user"
    )
    report = _line_report(paths, "user-sets", scans, note)
    return build_interactions(_ordered(users, items, positions_within_user(users)), None, report)


def _line_report(paths: Sequence[Path], fmt: str, scans: Sequence[LineScan], note: str) -> IngestReport:
    report = IngestReport(
        source=", ".join(map(str, paths)), format=fmt, timestamps_derived=True, notes=[note]
    )
    for scan in scans:
        report.n_rows += scan.n_rows
        report.add_malformed(scan.n_malformed, scan.examples)
    return report


READERS: dict[str, Callable[..., Interactions]] = {
    "recbole-atomic": read_recbole_atomic,
    "pairs": read_pairs,
    "user-sequences": read_user_sequences,
    "sessions": read_sessions,
    "user-sets": read_user_sets,
    "table": read_table,
}
