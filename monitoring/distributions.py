"""Reference data and log windows as the same three tidy tables, which is all the drift check ever sees.

- ``interests``: one row per generated interest: request, slot k, ``interest_code`` ("3", or "3-7" for a
  two-level dictionary), ``prob`` (its MIPDM probability).
- ``requests``: one row per response: ``history_len``, ``top_code`` (the most probable interest's code),
  ``prob_entropy`` (entropy of the K interest probabilities, nats).
- ``items``: one row per returned item: ``item_id``, ``rank``, ``via_code`` (code of the interest whose query
  retrieved it, "u" for the plain user vector; "3 · cat 4/11" when the model describes its interests, see
  ``interest_name``), ``popularity_bucket`` and ``item_code`` (the item's own dictionary code), both looked
  up in the model's tables.

A reference is either the folder ``monitoring.reference.write_reference`` leaves in a model folder
(``<model>/reference/``, written at training time from validation users) or a log window saved by
``reference_from_logs`` (e.g. last week's traffic). ``load_tables`` reads both.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from monitoring.logs import LogWindow, read_window

log = logging.getLogger(__name__)

TABLES = ("interests", "requests", "items")
USER_VECTOR = "u"  # via_code of items retrieved by the plain user vector (item_interest == -1)
UNKNOWN = "unknown"  # an item the lookup does not know (not in the model's catalogue)
ITEM_CODE_KEYS = "item_code_keys.parquet"
INTERESTS_FILE = "interests.json"  # in a model folder: every code's readable label (model/gemirec/explain.py)
LABELS_FILE = "interest_labels.json"  # the same labels, beside a log-window reference


def code_key(codes) -> str:
    """One string per code path, the same as ``monitoring.reference.code_label``: "3" or "3-7"."""
    return "-".join(str(int(c)) for c in np.atleast_1d(codes))


def interest_name(key: str, labels: dict[str, str]) -> str:
    """The name an interest is shown by: "3 · cat 4/11". The code keeps names unique (two codes can share a
    label) and comparable across model versions; the label says what the interest is about."""
    if not labels:
        return key
    if key == USER_VECTOR:
        return f"{USER_VECTOR} · user vector"
    return f"{key} · {labels[key]}" if key in labels else key


def read_labels(path: Path) -> dict[str, str]:
    """code key → label, from a model's interests.json or a reference's interest_labels.json ({} if absent)."""
    if not path.exists():
        return {}
    raw = json.loads(path.read_text())
    if isinstance(raw, dict):  # LABELS_FILE: already keyed
        return {str(k): str(v) for k, v in raw.items()}
    return {code_key(entry["code"]): str(entry["label"]) for entry in raw if entry.get("label")}


@dataclass
class Tables:
    interests: pd.DataFrame
    requests: pd.DataFrame
    items: pd.DataFrame

    @property
    def n_requests(self) -> int:
        return len(self.requests)

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for name in TABLES:
            getattr(self, name).to_parquet(folder / f"{name}.parquet", index=False)
        return folder


@dataclass(frozen=True)
class ItemLookup:
    """item id → popularity bucket and item code, from the model the traffic was served by."""

    popularity_bucket: pd.Series  # indexed by source item id
    item_code: pd.Series | None = None
    labels: dict[str, str] = field(default_factory=dict)  # interest code key → readable label

    @classmethod
    def from_reference(cls, folder: str | Path) -> ItemLookup | None:
        """From ``<model>/reference/`` (reference.py's format) and the model folder above it."""
        folder = Path(folder)
        buckets_path = folder / "popularity_buckets.parquet"
        if not buckets_path.exists():
            return None
        buckets = pd.read_parquet(buckets_path)
        codes = _item_codes(folder.parent / "item_codes.parquet")
        if (folder / ITEM_CODE_KEYS).exists():  # saved by ItemLookup.save with a log-window reference
            keys = pd.read_parquet(folder / ITEM_CODE_KEYS)
            codes = keys.set_index("item_id")["item_code"].astype(str)
        if codes is None and (folder / "items.parquet").exists():
            items = pd.read_parquet(folder / "items.parquet")
            if "interest_code" in items:
                codes = items.drop_duplicates("item_id").set_index("item_id")["interest_code"].astype(str)
        labels = read_labels(folder / LABELS_FILE) or read_labels(folder.parent / INTERESTS_FILE)
        return cls(buckets.set_index("item_id")["bucket"].astype(str), codes, labels)

    @classmethod
    def from_model(cls, folder: str | Path) -> ItemLookup:
        """From a saved model folder alone (buckets by training popularity, as reference.py cuts them)."""
        from monitoring.reference import popularity_buckets

        folder = Path(folder)
        buckets = popularity_buckets(pd.read_parquet(folder / "items.parquet"))
        return cls(buckets.set_index("item_id")["bucket"].astype(str),
                   _item_codes(folder / "item_codes.parquet"), read_labels(folder / INTERESTS_FILE))

    def save(self, folder: str | Path) -> None:
        """Beside a log-window reference, so that the folder alone serves as a reference later."""
        folder = Path(folder)
        pd.DataFrame({"item_id": self.popularity_bucket.index.to_numpy(dtype=np.int64),
                      "bucket": self.popularity_bucket.to_numpy()}).to_parquet(
            folder / "popularity_buckets.parquet", index=False)
        if self.item_code is not None:
            keys = pd.DataFrame({"item_id": self.item_code.index.to_numpy(dtype=np.int64),
                                 "item_code": self.item_code.to_numpy()})
            keys.to_parquet(folder / ITEM_CODE_KEYS, index=False)
        if self.labels:
            (folder / LABELS_FILE).write_text(json.dumps(self.labels, indent=1))

    def lookup(self, item_ids: np.ndarray) -> dict[str, pd.Categorical]:
        out = {"popularity_bucket": _map(self.popularity_bucket, item_ids)}
        if self.item_code is not None:
            out["item_code"] = _map(self.item_code, item_ids)
        return out


def _item_codes(path: Path) -> pd.Series | None:
    if not path.exists():
        return None
    codes = pd.read_parquet(path)
    levels = sorted(c for c in codes.columns if c.startswith("code_l"))
    keys = ["-".join(map(str, row)) for row in codes[levels].to_numpy(dtype=np.int64)]
    return pd.Series(keys, index=codes["item_id"].to_numpy(dtype=np.int64))


def _map(table: pd.Series, item_ids: np.ndarray) -> pd.Categorical:
    # get_indexer + from_codes: one vectorised pass even for millions of returned items
    values = table.to_numpy(dtype=object)
    categories = pd.Index(pd.unique(np.append(values, UNKNOWN)))
    value_codes = categories.get_indexer(values)
    position = table.index.get_indexer(item_ids)
    codes = np.where(position >= 0, value_codes[np.maximum(position, 0)], categories.get_loc(UNKNOWN))
    return pd.Categorical.from_codes(codes, categories=categories)


def per_request_stats(request: np.ndarray, codes: pd.Categorical, probs: np.ndarray, n_requests: int
                      ) -> tuple[pd.Categorical, np.ndarray]:
    """Top interest code and entropy of the (renormalised) interest probabilities of every request;
    a request without interests (a non-GemiRec model) gets NaN for both."""
    total = np.bincount(request, probs, minlength=n_requests).astype(np.float64)  # float even when empty
    q = probs / np.where(total[request] > 0, total[request], 1.0)
    plogp = np.where(q > 0, q * np.log(np.where(q > 0, q, 1.0)), 0.0)
    entropy = -np.bincount(request, plogp, minlength=n_requests).astype(np.float64)
    has = np.bincount(request, minlength=n_requests) > 0
    entropy[~has] = np.nan
    order = np.lexsort((-probs, request))  # by request, most probable first
    first = order[np.r_[True, request[order][1:] != request[order][:-1]]] if len(order) else order
    top = np.full(n_requests, -1, dtype=np.int64)
    top[request[first]] = np.asarray(codes.codes)[first]
    return pd.Categorical.from_codes(top, categories=codes.categories), entropy


def tables_from_window(window: LogWindow, lookup: ItemLookup | None = None) -> Tables:
    R = window.n_requests
    # code paths → categorical once, through a dict, instead of formatting a string per interest row
    index: dict[tuple[int, ...], int] = {}
    code_idx = np.fromiter((index.setdefault(c, len(index)) for c in window.interest_codes), dtype=np.int64,
                           count=len(window.interest_codes))
    categories = [code_key(c) for c in index]
    codes = pd.Categorical.from_codes(code_idx, categories=categories)
    k_counts = np.diff(window.interest_offsets)
    interest_request = np.repeat(np.arange(R), k_counts)
    interests = pd.DataFrame({
        "request": interest_request,
        "slot": np.arange(len(code_idx)) - window.interest_offsets[interest_request],
        "interest_code": codes, "prob": window.interest_probs})
    top_code, entropy = per_request_stats(interest_request, codes, window.interest_probs, R)
    n_counts = np.diff(window.item_offsets)
    requests = pd.DataFrame({"request": np.arange(R), "ts": window.ts, "history_len": window.history_len,
                             "top_code": top_code, "prob_entropy": entropy, "n_items": n_counts,
                             "latency_ms": window.latency_ms, "model_version": window.model_version})
    item_request = np.repeat(np.arange(R), n_counts)
    via = window.item_interest
    row = window.interest_offsets[item_request] + np.maximum(via, 0)
    via_code = code_idx[np.minimum(row, max(len(code_idx) - 1, 0))] if len(code_idx) else -1
    via_idx = np.where(via >= 0, via_code, len(categories))  # -1 (u) → the extra category
    labels = lookup.labels if lookup is not None else {}
    items = pd.DataFrame({
        # int32: the items table is the big one (50 rows a response), and it is written and read once a run
        "request": item_request.astype(np.int32),
        "rank": (np.arange(len(via)) - window.item_offsets[item_request]).astype(np.int32),
        "item_id": window.items,
        "via_code": pd.Categorical.from_codes(
            via_idx, categories=[interest_name(c, labels) for c in [*categories, USER_VECTOR]])})
    if lookup is not None:
        for name, values in lookup.lookup(window.items).items():
            items[name] = values
    return Tables(interests, requests, items)


def current_tables(folder: str | Path, since: datetime | None = None, until: datetime | None = None,
                   lookup: ItemLookup | None = None) -> tuple[Tables, dict]:
    """The log window's tables plus its reading summary (lines, requests, corrupt lines and examples)."""
    window = read_window(folder, since, until)
    return tables_from_window(window, lookup), window.summary()


def reference_from_logs(folder: str | Path, out: str | Path, since: datetime | None = None,
                        until: datetime | None = None, lookup: ItemLookup | None = None) -> Path:
    """Save a log window as a reference (for instance the week after a release, once judged healthy)."""
    tables, summary = current_tables(folder, since, until, lookup)
    log.info("reference from %s: %d requests (%d corrupt lines skipped) -> %s", folder, tables.n_requests,
             summary["n_corrupt"], out)
    out = tables.save(out)
    if lookup is not None:
        lookup.save(out)
    return out


def _from_training_reference(folder: Path) -> Tables:
    """reference.py's parquet (validation users at training time) → the three tables."""
    interests = pd.read_parquet(folder / "interests.parquet") if (folder / "interests.parquet").exists() \
        else pd.DataFrame({"user": pd.Series(dtype=np.int64), "slot": pd.Series(dtype=np.int64),
                           "interest_code": pd.Series(dtype=str), "prob": pd.Series(dtype=float)})
    lengths = pd.read_parquet(folder / "history_length.parquet")
    users = lengths["user"].to_numpy(dtype=np.int64)
    position = pd.Index(users)
    request = position.get_indexer(interests["user"].to_numpy(dtype=np.int64))
    codes = pd.Categorical(interests["interest_code"].astype(str))
    probs = interests["prob"].to_numpy(dtype=np.float64)
    top_code, entropy = per_request_stats(request, codes, probs, len(users))
    requests = pd.DataFrame({"request": np.arange(len(users)), "history_len": lengths["history_length"],
                             "top_code": top_code, "prob_entropy": entropy})
    items = pd.read_parquet(folder / "items.parquet")
    items = items[items["role"] == "recommended"]
    out = pd.DataFrame({"request": position.get_indexer(items["user"].to_numpy(dtype=np.int64)),
                        "rank": items["rank"].to_numpy(), "item_id": items["item_id"].to_numpy()})
    if "interest_slot" in items:  # attribution, if the training-time reference records it
        slot = items["interest_slot"].to_numpy(dtype=np.int64)
        key = interests.set_index(["user", "slot"])["interest_code"].astype(str)
        via = key.reindex(pd.MultiIndex.from_arrays([items["user"].to_numpy(), slot])).to_numpy()
        labels = read_labels(folder.parent / INTERESTS_FILE)  # the model folder the reference sits in
        out["via_code"] = pd.Categorical([interest_name(str(k), labels)
                                          for k in np.where(slot < 0, USER_VECTOR, via)])
    if "popularity_bucket" in items:
        out["popularity_bucket"] = pd.Categorical(items["popularity_bucket"].astype(str).to_numpy())
    if "interest_code" in items:
        out["item_code"] = pd.Categorical(items["interest_code"].astype(str).to_numpy())
    return Tables(pd.DataFrame({"request": request, "slot": interests["slot"].to_numpy(),
                                "interest_code": codes, "prob": probs}), requests, out)


def load_tables(folder: str | Path) -> Tables:
    """A saved reference: a log-window reference (``requests.parquet``) or reference.py's training-time one
    (``history_length.parquet``)."""
    folder = Path(folder)
    if (folder / "requests.parquet").exists():
        return Tables(*(pd.read_parquet(folder / f"{name}.parquet") for name in TABLES))
    if (folder / "history_length.parquet").exists():
        return _from_training_reference(folder)
    raise FileNotFoundError(f"{folder}: no reference tables (requests.parquet or history_length.parquet)")


def lookup_for(reference: str | Path) -> ItemLookup | None:
    """The item lookup that goes with a reference folder: its own tables if it is a training-time
    reference, or the model folder's tables when the reference folder sits in one."""
    reference = Path(reference)
    found = ItemLookup.from_reference(reference)
    if found is None and (reference.parent / "items.parquet").exists():
        found = ItemLookup.from_model(reference.parent)
    return found
