"""Readers of delimited tables (CSV/TSV with a header or given names), RecBole atomic files and MovieLens
item files; each returns canonical ``Interactions`` or an item frame.

Columns are found by name or by common aliases; rows the parser cannot split are skipped with their line
numbers in the report, never fatal.
"""

from __future__ import annotations

import csv
import re
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

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
    head_lines,
    lines_at,
    positions_within_user,
    read_text,
    resolve,
    validate_rows,
)

USER_ALIASES = ("user_id", "userId", "user", "uid", "UserID", "session_id")
ITEM_ALIASES = ("item_id", "itemId", "item", "iid", "movie_id", "movieId", "product_id", "MovieID")
TIME_ALIASES = ("event_timestamp", "timestamp", "time", "ts", "datetime", "date")
DERIVED_NOTE = "timestamps derived: 2020-01-01 UTC + position seconds"



def _sniff_separator(header: str) -> str:
    for sep in ("\t", ",", ";", "|"):
        if sep in header:
            return sep
    return r"\s+"


def _read_delimited(path: Path, sep: str, **kwargs) -> tuple[pd.DataFrame, list[int]]:
    """read_csv that keeps going past lines with too many fields and returns their line numbers."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", pd.errors.ParserWarning)
        frame = pd.read_csv(path, sep=sep, on_bad_lines="warn", engine="c", compression="infer", **kwargs)
    skipped = [int(m.group(1)) for w in caught for m in re.finditer(r"Skipping line (\d+)", str(w.message))]
    return frame, sorted(skipped)


def _row_lines(n_rows: int, skipped: list[int], first_data_line: int) -> np.ndarray:
    """File line of each parsed row, given the lines the parser skipped (blank lines are not tracked)."""
    lines = np.arange(first_data_line, first_data_line + n_rows + len(skipped))
    return lines[~np.isin(lines, skipped)][:n_rows]


def _pick(
    columns: Sequence[str], wanted: str | None, aliases: Sequence[str], what: str, name: str
) -> str | None:
    if wanted is not None:
        if wanted not in columns:
            raise IngestError(f"{name}: expected a {what} column {wanted!r}, found columns {list(columns)}")
        return wanted
    return next((a for a in aliases if a in columns), None)


def read_table(
    path: PathLike,
    user_col: str | None = None,
    item_col: str | None = None,
    time_col: str | None = None,
    order_cols: Sequence[str] = (),
    *,
    derive_time: bool = False,
    time_unit: str = "s",
    sep: str | None = None,
    items: pd.DataFrame | None = None,
    names: Sequence[str] | None = None,
    fmt: str = "table",
) -> Interactions:
    """CSV/TSV/parquet with user, item and a time column (names found by common aliases when not given).

    Without a time column (or with ``derive_time``), order is file order within user, or the numeric
    ``order_cols`` (e.g. Instacart's order_number, add_to_cart_order) when given. ``names`` replaces the
    header's column names (the file still has a header row).
    """
    path = resolve(path)
    name = base_name(path)
    is_parquet = name.endswith(".parquet")
    if is_parquet:
        columns = pq.read_schema(path).names
    elif names is not None:
        columns = list(names)
        sep = sep or "\t"
    else:
        header = head_lines(path, 1)
        if not header:
            raise IngestError(
                f"{name}: expected a header row naming user, item and time columns; file is empty"
            )
        sep = sep or _sniff_separator(header[0])
        columns = [c.strip() for c in (header[0].split() if sep == r"\s+" else header[0].split(sep))]
        columns = [c if c else "Unnamed: 0" for c in columns]
    user = _pick(columns, user_col, USER_ALIASES, "user", name)
    item = _pick(columns, item_col, ITEM_ALIASES, "item", name)
    if user is None or item is None:
        raise IngestError(
            f"{name}: expected a header with user and item columns (e.g. 'user_id', 'item_id'); "
            f"found {columns}; name them with user_col=/item_col="
        )
    time = None if derive_time else _pick(columns, time_col, TIME_ALIASES, "time", name)
    for column in order_cols:
        _pick(columns, column, (), "order", name)
    wanted = list(dict.fromkeys([user, item] + ([time] if time else []) + list(order_cols)))
    if is_parquet:
        raw, skipped = pd.read_parquet(path, columns=wanted), []
        lines = np.arange(1, len(raw) + 1)
        label = "row"
    else:
        header_kwargs = {"header": 0, "names": list(names)} if names is not None else {}
        # no usecols: with it pandas silently truncates lines that have too many fields
        raw, skipped = _read_delimited(path, sep, **header_kwargs)
        raw = raw[wanted]
        lines, label = _row_lines(len(raw), skipped, 2), "line"
    report = IngestReport(source=str(path), format=fmt, n_rows=len(raw) + len(skipped))
    texts = lines_at(path, skipped[:MAX_EXAMPLES]) if skipped else {}
    report.add_malformed(
        len(skipped), [f"line {n}: {texts.get(n, '')} (wrong number of fields)" for n in skipped]
    )

    order_ok = np.ones(len(raw), dtype=bool)
    order_values = []
    for column in order_cols:
        numeric = pd.to_numeric(raw[column], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        order_ok &= np.isfinite(numeric)
        order_values.append(numeric)
    stamp = raw[time] if time else np.where(order_ok, 0, np.nan)
    frame = pd.DataFrame({"user_id": raw[user], "item_id": raw[item], "event_timestamp": stamp})
    reason = "bad timestamp" if time else "bad order value"

    def row_text(rows: np.ndarray) -> list[str]:
        if is_parquet:
            return [" ".join(map(str, raw.iloc[r].tolist())) for r in rows]
        found = lines_at(path, lines[rows].tolist())  # quote the source line, not pandas' reading of it
        return [found.get(int(n), "") for n in lines[rows]]

    clean, ok, examples = validate_rows(
        frame,
        time_unit=time_unit,
        line_numbers=lines,
        row_text=row_text,
        time_reason=reason,
        line_label=label,
    )
    report.add_malformed(int((~ok).sum()), examples)
    if time is None:
        users = clean["user_id"].to_numpy()
        if order_cols:
            keys = [v[ok] for v in reversed(order_values)]
            # a stable sort by (user, order columns) recovers the within-user order
            order = np.lexsort((*keys, users))
            clean = clean.iloc[order].reset_index(drop=True)
            users = users[order]
        clean["event_timestamp"] = derive_timestamps(positions_within_user(users))
        report.timestamps_derived = True
        by = f"order columns {list(order_cols)}" if order_cols else "file order"
        report.notes.append(f"no time column: {DERIVED_NOTE} within user, by {by}")
    return build_interactions(clean, items, report)


def read_recbole_atomic(inter_path: PathLike, item_path: PathLike | None = None) -> Interactions:
    """RecBole atomic ``.inter`` (tab-separated, ``name:type`` header) and optional ``.item`` with genres."""
    inter_path = resolve(inter_path)
    names = _recbole_names(inter_path, ("user_id", "item_id"))
    time = "timestamp" if "timestamp" in names else None
    items = None
    if item_path is not None:
        item_path = resolve(item_path)
        items, vocabulary = read_recbole_items(item_path)
    data = read_table(inter_path, "user_id", "item_id", time, sep="\t", names=names, items=items)
    data.report.format = "recbole-atomic"
    if item_path is not None:
        genre_ids = ", ".join(f"{k}={g}" for k, g in enumerate(vocabulary))
        data.report.source += f", {item_path}"
        data.report.notes.append(f"category = first genre, attributes = all genres; genre ids: {genre_ids}")
    return data


def _recbole_names(path: Path, required: Sequence[str]) -> list[str]:
    header = (head_lines(path, 1) or [""])[0]
    fields = header.split("\t")
    names = [f.split(":")[0] for f in fields]
    if not all(":" in f for f in fields) or not set(required) <= set(names):
        like = "\\t".join(f"{r}:token" for r in required)
        raise IngestError(
            f"{base_name(path)}: expected a RecBole atomic header like '{like}\\t...', got {header[:80]!r}"
        )
    return names


def read_recbole_items(path: PathLike) -> tuple[pd.DataFrame, list[str]]:
    """``.item`` file: the ``class`` (or ``genre``) column lists space-separated genres."""
    path = resolve(path)
    names = _recbole_names(path, ("item_id",))
    genre = next((g for g in ("class", "genre", "genres", "categories") if g in names), None)
    if genre is None:
        raise IngestError(
            f"{base_name(path)}: expected a 'class:token_seq' (or 'genre') column, found {names}"
        )
    options = {"dtype": str, "quoting": csv.QUOTE_NONE, "keep_default_na": False, "on_bad_lines": "skip"}
    frame = pd.read_csv(path, sep="\t", header=0, names=names, usecols=["item_id", genre], **options)
    return _genre_items(frame["item_id"], frame[genre].str.split(), base_name(path))


def read_movielens_movies(path: PathLike) -> tuple[pd.DataFrame, list[str]]:
    """MovieLens ``movies.dat``: ``MovieID::Title::Genre|Genre`` in latin-1."""
    path = resolve(path)
    rows = [line.split("::") for line in read_text(path, encoding="latin-1").splitlines() if line.strip()]
    rows = [r for r in rows if len(r) >= 3]
    if not rows:
        raise IngestError(f"{base_name(path)}: expected 'MovieID::Title::Genre|Genre' lines")
    ids = pd.Series([r[0] for r in rows])
    genres = pd.Series([r[-1].split("|") for r in rows])
    return _genre_items(ids, genres, base_name(path))


def _genre_items(ids: pd.Series, genres: pd.Series, name: str) -> tuple[pd.DataFrame, list[str]]:
    """Genre names become ids in alphabetical order so the mapping is reproducible from the file alone."""
    numeric = pd.to_numeric(ids, errors="coerce")
    keep = numeric.notna().to_numpy()
    if not keep.any():
        raise IngestError(f"{name}: expected integer item ids in the first column")
    genres = genres[keep].reset_index(drop=True)
    vocabulary = sorted({g for row in genres for g in row if g})
    index = {g: k for k, g in enumerate(vocabulary)}
    attributes = [[index[g] for g in row if g] for row in genres]
    categories = [a[0] if a else UNKNOWN_CATEGORY for a in attributes]
    ids = numeric[keep].to_numpy(dtype="int64")
    return pd.DataFrame({"item_id": ids, "category": categories, "attributes": attributes}), vocabulary
