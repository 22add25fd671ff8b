"""From a canonical events table to per-user item sequences, the 8:1:1 user split and batches.

Items get dense indices 1..n (0 is padding). Sequences are stored CSR-style (one flat array plus
offsets) so that millions of events cost a few arrays, not millions of Python lists. Histories are
left-padded: the newest item is always in the last column, which is where causal encoders read `u`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from model.config import DataConfig

PAD = 0


@dataclass
class EvalSet:
    """Validation or test users under the ComiRec protocol (DESIGN §3)."""

    users: np.ndarray  # (U,) row indices into SequenceData.user_ids
    histories: np.ndarray  # (U, maxlen) int64, left-padded dense item ids
    targets: np.ndarray  # (U, Tmax) int64, -1 padded; all items of the last 20 %
    full_histories: list[np.ndarray]  # whole 80 % prefix (for novel-category metrics)

    def __len__(self) -> int:
        return len(self.users)


@dataclass
class SequenceData:
    user_ids: np.ndarray  # (n_users,) source user ids
    item_ids: np.ndarray  # (n_items + 1,) source item id of each dense index; [0] = -1 (padding)
    offsets: np.ndarray  # (n_users + 1,) CSR offsets into `flat`
    flat: np.ndarray  # dense item ids, time-ordered within each user
    item_category: np.ndarray  # (n_items + 1,) int64, -1 = unknown
    item_attributes: np.ndarray  # (n_items + 1, A) int64 attribute indices (1-based dense), 0 = none
    n_attributes: int
    split: np.ndarray  # (n_users,) 0 train, 1 validation, 2 test
    cfg: DataConfig

    # ---- construction -------------------------------------------------------------------------
    @classmethod
    def from_frames(
        cls, events: pd.DataFrame, items: pd.DataFrame | None, cfg: DataConfig
    ) -> SequenceData:
        if not {"user_id", "item_id"} <= set(events.columns):
            raise ValueError(f"events need user_id and item_id columns, got {list(events.columns)}")
        ev = events
        if "event_timestamp" in ev.columns:
            # stable sort keeps the source order of ties (order-only datasets rely on it)
            ev = ev.sort_values(["user_id", "event_timestamp"], kind="stable")
        else:
            ev = ev.sort_values("user_id", kind="stable")
        return cls._from_sorted(ev["user_id"].to_numpy(), ev["item_id"].to_numpy(), items, cfg)

    @classmethod
    def from_parquet(
        cls, events_path: str | Path, items: pd.DataFrame | str | Path | None, cfg: DataConfig,
        batch_rows: int = 1 << 20,
    ) -> SequenceData:
        """The same sequences as `from_frames` on that file, read straight into three int64 arrays.

        A pandas frame of the whole log costs several copies of it (the frame, its sorted copy, object
        timestamps); this keeps 24 bytes per event plus the sort's index, so training on a 10M-event log
        does not need a frame of it. `items` is the small per-item table, or the path of its parquet file.
        """
        import pyarrow as pa
        import pyarrow.parquet as pq

        source = pq.ParquetFile(events_path)
        names = set(source.schema_arrow.names)
        if not {"user_id", "item_id"} <= names:
            raise ValueError(f"{events_path}: events need user_id and item_id columns, got {sorted(names)}")
        columns = ["user_id", "item_id"] + (["event_timestamp"] if "event_timestamp" in names else [])
        n = source.metadata.num_rows
        arrays = {c: np.empty(n, dtype=np.int64) for c in columns}
        at = 0
        for batch in source.iter_batches(batch_size=batch_rows, columns=columns):
            for c in columns:
                column = batch.column(c)
                if pa.types.is_timestamp(column.type):
                    column = column.cast(pa.timestamp(column.type.unit)).cast(pa.int64())
                arrays[c][at : at + len(batch)] = column.to_numpy(zero_copy_only=False)
            at += len(batch)
        users, item_col = arrays["user_id"], arrays["item_id"]
        keys = (arrays["event_timestamp"], users) if "event_timestamp" in arrays else (users,)
        order = np.lexsort(keys)  # stable, like from_frames' sort: ties keep the file's order
        del arrays, keys  # keys holds the timestamps: free them before the sorted copies are made
        users, item_col = users[order], item_col[order]
        del order
        if items is not None and not isinstance(items, pd.DataFrame):
            items = pq.read_table(items).to_pandas()
        return cls._from_sorted(users, item_col, items, cfg)

    @classmethod
    def _from_sorted(cls, users: np.ndarray, item_col: np.ndarray, items: pd.DataFrame | None,
                     cfg: DataConfig) -> SequenceData:
        """Build from user and item ids already ordered by (user, time)."""
        item_codes, item_uniques = pd.factorize(item_col, sort=True)
        user_codes, user_uniques = pd.factorize(users, sort=True)
        flat = item_codes.astype(np.int64) + 1
        counts = np.bincount(user_codes, minlength=len(user_uniques))
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        item_ids = np.concatenate([[-1], np.asarray(item_uniques, dtype=np.int64)])
        category, attrs, n_attr = _item_side(item_ids, items)
        split = _split_users(len(user_uniques), cfg.split_seed)
        return cls(
            user_ids=np.asarray(user_uniques, dtype=np.int64),
            item_ids=item_ids,
            offsets=offsets,
            flat=flat,
            item_category=category,
            item_attributes=attrs,
            n_attributes=n_attr,
            split=split,
            cfg=cfg,
        )

    # ---- basic views --------------------------------------------------------------------------
    @property
    def n_items(self) -> int:
        return len(self.item_ids) - 1

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    def sequence(self, user: int) -> np.ndarray:
        return self.flat[self.offsets[user] : self.offsets[user + 1]]

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def users_of(self, part: int) -> np.ndarray:
        return np.flatnonzero(self.split == part)

    def item_popularity(self) -> np.ndarray:
        """Interaction counts over training users only (no leak from validation/test targets)."""
        train = self.users_of(0)
        idx = np.concatenate([self.sequence(u) for u in train]) if len(train) else np.zeros(0, int)
        return np.bincount(idx, minlength=self.n_items + 1).astype(np.float64)

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        for arr in (self.user_ids, self.item_ids, self.offsets, self.flat, self.split):
            h.update(np.ascontiguousarray(arr).tobytes())
        return h.hexdigest()[:16]

    def encode_items(self, source_ids: np.ndarray) -> np.ndarray:
        """Source item ids -> dense ids; unknown ids -> 0."""
        order = self.item_ids[1:]
        pos = np.searchsorted(order, source_ids)
        pos = np.clip(pos, 0, len(order) - 1)
        found = order[pos] == source_ids
        return np.where(found, pos + 1, 0).astype(np.int64)

    # ---- evaluation users ---------------------------------------------------------------------
    def eval_set(self, part: int) -> EvalSet:
        users = self.users_of(part)
        maxlen = self.cfg.maxlen
        hist = np.zeros((len(users), maxlen), dtype=np.int64)
        tgts: list[np.ndarray] = []
        full: list[np.ndarray] = []
        keep = []
        for row, u in enumerate(users):
            seq = self.sequence(u)
            if len(seq) < 2:
                continue  # nothing to predict
            cut = min(max(int(len(seq) * self.cfg.history_share), 1), len(seq) - 1)
            h = seq[:cut][-maxlen:]
            hist[row, maxlen - len(h) :] = h
            full.append(seq[:cut])
            tgts.append(np.unique(seq[cut:]))
            keep.append(row)
        keep_arr = np.asarray(keep, dtype=np.int64)
        tmax = max((len(t) for t in tgts), default=1)
        targets = np.full((len(tgts), tmax), -1, dtype=np.int64)
        for row, t in enumerate(tgts):
            targets[row, : len(t)] = t
        return EvalSet(users[keep_arr], hist[keep_arr], targets, full)

    # ---- training batches ---------------------------------------------------------------------
    def training_users(self, mode: str = "positions", reps_max: int = 10) -> np.ndarray:
        """The users one epoch draws from, unshuffled: training users with a next item to predict,
        each repeated `_cut_reps` times for one-cut models (see `cut_batches`)."""
        users = self.users_of(0)
        users = users[self.lengths()[users] >= 2]
        return np.repeat(users, self._cut_reps(users, reps_max)) if mode == "cut" else users

    def window_batches(self, batch_size: int, rng: np.random.Generator, order: np.ndarray | None = None):
        """All-positions windows (causal models): inputs (B, L) and next-item targets (B, L).

        design choice (not from the paper): each epoch takes one random window of maxlen+1 items per
        training user, so long histories contribute different stretches over epochs instead of
        always their last maxlen items. `order` replaces the shuffled `training_users()` with a given
        sequence of users (a data-parallel rank's shard, model/training/distributed.py).
        """
        users = order
        if users is None:
            users = self.training_users()
            rng.shuffle(users)
        L = self.cfg.maxlen
        for start in range(0, len(users), batch_size):
            chunk = users[start : start + batch_size]
            inputs = np.zeros((len(chunk), L), dtype=np.int64)
            targets = np.zeros((len(chunk), L), dtype=np.int64)
            for row, u in enumerate(chunk):
                seq = self.sequence(u)
                lo_end = min(len(seq), L + 1)
                end = int(rng.integers(lo_end, len(seq) + 1))
                win = seq[max(0, end - L - 1) : end]
                n = len(win) - 1
                inputs[row, L - n :] = win[:-1]
                targets[row, L - n :] = win[1:]
            yield inputs, targets

    def cut_batches(self, batch_size: int, rng: np.random.Generator, reps_max: int = 10,
                    order: np.ndarray | None = None):
        """One random cut per sample (MIND/ComiRec): history (B, L), target (B,).

        design choice (not from the paper): an epoch holds as many (history, target) samples as the
        all-positions models see in theirs (Σ_u min(len_u − 1, maxlen)), spread evenly over users, so
        "epoch", patience and early stopping mean the same amount of data for every model — capped at
        `reps_max` cuts per user, since on long histories (50 positions a user) one such epoch costs a
        non-causal model 50 full passes and early stopping would act far too coarsely. `order` as in
        `window_batches`.
        """
        users = order
        if users is None:
            users = self.training_users("cut", reps_max)
            rng.shuffle(users)
        L = self.cfg.maxlen
        for start in range(0, len(users), batch_size):
            chunk = users[start : start + batch_size]
            hist = np.zeros((len(chunk), L), dtype=np.int64)
            target = np.zeros(len(chunk), dtype=np.int64)
            for row, u in enumerate(chunk):
                seq = self.sequence(u)
                cut = int(rng.integers(1, len(seq)))
                h = seq[max(0, cut - L) : cut]
                hist[row, L - len(h) :] = h
                target[row] = seq[cut]
            yield hist, target

    def _cut_reps(self, users: np.ndarray, reps_max: int) -> int:
        positions = np.minimum(self.lengths()[users] - 1, self.cfg.maxlen).sum()
        return int(min(max(1, round(positions / max(len(users), 1))), reps_max))

    def steps_per_epoch(self, batch_size: int, mode: str, reps_max: int = 10) -> int:
        return int(np.ceil(len(self.training_users(mode, reps_max)) / batch_size))


def _split_users(n_users: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n_users)
    n_train = int(round(n_users * 0.8))
    n_val = int(round(n_users * 0.1))
    split = np.zeros(n_users, dtype=np.int8)
    split[perm[n_train : n_train + n_val]] = 1
    split[perm[n_train + n_val :]] = 2
    return split


def _item_side(item_ids: np.ndarray, items: pd.DataFrame | None):
    n = len(item_ids)
    category = np.full(n, -1, dtype=np.int64)
    if items is None or len(items) == 0:
        return category, np.zeros((n, 1), dtype=np.int64), 0
    items = items.drop_duplicates("item_id").set_index("item_id")
    known = pd.Index(items.index)
    pos = known.get_indexer(item_ids[1:])
    has = pos >= 0
    if "category" in items.columns:
        cats = items["category"].to_numpy(dtype=np.int64)
        category[1:][has] = cats[pos[has]]
    if "attributes" not in items.columns:
        return category, np.zeros((n, 1), dtype=np.int64), 0
    lists = [
        np.asarray(items["attributes"].iloc[p], dtype=np.int64) if p >= 0 else np.zeros(0, np.int64)
        for p in pos
    ]
    all_attr = np.concatenate(lists) if lists else np.zeros(0, np.int64)
    if len(all_attr) == 0:
        return category, np.zeros((n, 1), dtype=np.int64), 0
    uniq = np.unique(all_attr)
    width = max(len(a) for a in lists)
    attrs = np.zeros((n, width), dtype=np.int64)
    for row, a in enumerate(lists, start=1):
        attrs[row, : len(a)] = np.searchsorted(uniq, a) + 1
    return category, attrs, len(uniq)
