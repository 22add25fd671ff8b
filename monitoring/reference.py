"""Reference distributions: the model's inputs and outputs on validation users, at training time.

Monitoring compares serving logs against these tables, so they hold the same quantities a request produces:
the generated interest codes with their probabilities, the interest codes of recommended and history items,
which interest retrieved each recommended item, history lengths and item-popularity buckets. Written as
parquet under ``<model folder>/reference/`` so a registered version carries its own reference (the folder's
manifest checksums cover only the model files).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from model.config import DataConfig
from model.persistence.saved import LoadedModel
from model.sequences import SequenceData

log = logging.getLogger(__name__)

REFERENCE_DIR = "reference"
# Popularity buckets by an item's rank in training popularity: share of the catalogue from the top.
BUCKET_EDGES = (0.01, 0.05, 0.2, 0.5)
BUCKET_NAMES = ("top1%", "1-5%", "5-20%", "20-50%", "tail50%")


def validation_histories(events: pd.DataFrame, items: pd.DataFrame | None, data_cfg: DataConfig
                         ) -> list[list[int]]:
    """Source item ids of validation users' histories (their first 80 %), as the evaluation protocol cuts
    them: the inputs a served model sees for users it was not trained on."""
    data = SequenceData.from_frames(events, items, data_cfg)
    val = data.eval_set(1)
    return [data.item_ids[np.asarray(h, dtype=np.int64)].tolist() for h in val.full_histories]


REFERENCE_USERS = 3000


def reference_histories(events: pd.DataFrame, items: pd.DataFrame | None, data_cfg: DataConfig,
                        max_users: int = REFERENCE_USERS, seed: int = 0) -> list[list[int]]:
    """The histories the monitor's reference is computed on: every validation user's first 80 % (users the
    model never trained on) plus training users' latest histories, up to `max_users` in all.

    design choice: served traffic is mostly users the store knows, asking with their latest history, so
    training users belong in the reference; and 300 validation users (the simulator's) leave most columns
    "insufficient": a histogram of that size differs from any other by more than the thresholds by chance.
    """
    data = SequenceData.from_frames(events, items, data_cfg)
    val = [data.item_ids[np.asarray(h, dtype=np.int64)].tolist() for h in data.eval_set(1).full_histories]
    train = data.users_of(0)
    room = max(max_users - len(val), 0)
    if room < len(train):
        train = np.sort(np.random.default_rng(seed).choice(train, size=room, replace=False))
    latest = [data.item_ids[data.sequence(int(u))[-data_cfg.maxlen:]].tolist() for u in train]
    return (val + latest)[:max_users]


def code_label(codes) -> str:
    """One string per code path, e.g. "3" or "3-7" for a two-level dictionary."""
    return "-".join(str(int(c)) for c in np.atleast_1d(codes))


def popularity_buckets(items: pd.DataFrame) -> pd.DataFrame:
    """item_id → bucket, by rank of training popularity (ties broken by id for reproducibility)."""
    order = items.sort_values(["popularity", "item_id"], ascending=[False, True], kind="stable")
    share = (np.arange(len(order)) + 1) / max(len(order), 1)
    bucket = np.searchsorted(np.asarray(BUCKET_EDGES), share, side="left")
    return pd.DataFrame({"item_id": order["item_id"].to_numpy(dtype=np.int64),
                         "bucket": np.asarray(BUCKET_NAMES)[bucket]})


def attribution(ranked: np.ndarray, per_interest: np.ndarray | None) -> np.ndarray:
    """(U, N) index k of the first interest whose own list holds each merged item, -1 if none (u)."""
    if per_interest is None:
        return np.full(ranked.shape, -1, dtype=np.int64)
    match = (ranked[:, None, :, None] == per_interest[:, :, None, :]).any(-1)  # (U, K, N)
    return np.where(match.any(1), match.argmax(1), -1)


def reference_tables(loaded: LoadedModel, histories: list[list[int]], item_codes: pd.DataFrame | None,
                     n: int = 50, batch: int = 512) -> dict[str, pd.DataFrame]:
    buckets = popularity_buckets(loaded.items).set_index("item_id")["bucket"]
    code_table = None if item_codes is None else _item_code_labels(item_codes)
    ids = np.concatenate([[-1], loaded.item_ids])
    interest_rows, item_rows = [], []
    for start in range(0, len(histories), batch):
        chunk = histories[start:start + batch]
        rec = loaded.recommend(chunk, n)
        # which interest retrieved each item, as the service logs it: the reference then has traffic shares
        per_interest = None if rec.per_interest is None else ids[np.maximum(rec.per_interest, 0)]
        via = attribution(rec.ranked, per_interest)
        for row, history in enumerate(chunk):
            user = start + row
            keep = rec.ranked[row] >= 0
            recommended = rec.ranked[row][keep].astype(np.int64)
            item_rows.append(pd.DataFrame({"user": user, "role": "recommended",
                                           "rank": np.arange(len(recommended)), "item_id": recommended,
                                           "interest_slot": via[row][keep]}))
            item_rows.append(pd.DataFrame({"user": user, "role": "history",  # slot -1: not retrieved
                                           "rank": np.arange(len(history))[::-1], "item_id": history,
                                           "interest_slot": -1}))
            if rec.interest_codes is not None:
                for k, (codes, p) in enumerate(zip(rec.interest_codes[row], rec.interest_probs[row])):
                    interest_rows.append((user, k, code_label(codes), float(p)))
    items = pd.concat(item_rows, ignore_index=True) if item_rows else pd.DataFrame(
        columns=["user", "role", "rank", "item_id", "interest_slot"])
    items["popularity_bucket"] = items["item_id"].map(buckets).fillna("unknown")
    if code_table is not None:
        items["interest_code"] = items["item_id"].map(code_table).fillna("unknown")
    tables = {
        "items": items,
        "history_length": pd.DataFrame({"user": np.arange(len(histories)),
                                        "history_length": [len(h) for h in histories]}),
        "popularity_buckets": buckets.reset_index(),
    }
    if interest_rows:
        tables["interests"] = pd.DataFrame(interest_rows, columns=["user", "slot", "interest_code", "prob"])
    return tables


def _item_code_labels(codes: pd.DataFrame) -> pd.Series:
    levels = sorted(c for c in codes.columns if c.startswith("code_l"))
    labels = ["-".join(map(str, row)) for row in codes[levels].to_numpy(dtype=np.int64)]
    return pd.Series(labels, index=codes["item_id"].to_numpy(dtype=np.int64))


def write_reference(loaded: LoadedModel, histories: list[list[int]], folder: str | Path, n: int = 50) -> Path:
    """Write the reference tables of the model saved in ``folder`` into ``<folder>/reference/``."""
    folder = Path(folder)
    codes_path = folder / "item_codes.parquet"
    item_codes = pd.read_parquet(codes_path) if codes_path.exists() else None
    out = folder / REFERENCE_DIR
    out.mkdir(parents=True, exist_ok=True)
    tables = reference_tables(loaded, histories, item_codes, n)
    for name, table in tables.items():
        table.to_parquet(out / f"{name}.parquet", index=False)
    summary = {"n_users": len(histories), "n": n, "tables": sorted(tables),
               "bucket_edges": list(BUCKET_EDGES), "bucket_names": list(BUCKET_NAMES),
               "model": loaded.cfg.model}
    (out / "reference.json").write_text(json.dumps(summary, indent=1))
    log.info("reference distributions for %d users (validation and training) -> %s", len(histories), out)
    return out
