"""`gemirec evaluate`: a saved model folder on a dataset's validation or test users (DESIGN §3 protocol).

    gemirec evaluate runs/sim/model --dataset simulator

The dataset is split as at training (same split seed, so on the training data these are the held-out users).
Its item ids are mapped onto the model's catalogue: items the model never saw are dropped from histories and
targets (and counted), since the model cannot retrieve them; users left with fewer than two events drop out.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from model.evaluation.evaluate import evaluate
from model.persistence.saved import LoadedModel
from model.sequences import SequenceData

SPLITS = {"val": 1, "test": 2}


@dataclass
class SavedEvaluation:
    metrics: dict[str, float]
    n_users: int
    n_unknown_events: int  # events on items the model does not know (dropped)
    n_events: int
    same_data: bool  # the dataset is the one the model was trained on (data fingerprint matches)


def in_model_space(loaded: LoadedModel, data: SequenceData) -> SequenceData:
    """The same users and split, with item ids renumbered to the model's dense ids (unknown items dropped)."""
    dense = loaded.encode(data.item_ids[data.flat])  # 0: not in the model's catalogue
    keep = dense > 0
    user_of_event = np.repeat(np.arange(data.n_users), data.lengths())
    counts = np.bincount(user_of_event[keep], minlength=data.n_users)
    items = loaded.items
    attributes = np.zeros((len(items) + 1, max(1, max((len(a) for a in items["attributes"]), default=1))),
                          dtype=np.int64)
    for row, a in enumerate(items["attributes"], start=1):
        attributes[row, : len(a)] = a
    return dataclasses.replace(
        data,
        item_ids=np.concatenate([[-1], loaded.item_ids.astype(np.int64)]),
        offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        flat=dense[keep],
        item_category=np.concatenate([[-1], items["category"].to_numpy(dtype=np.int64)]),
        item_attributes=attributes,
        n_attributes=int(loaded.manifest.get("n_attributes", 0)),
        cfg=loaded.cfg.data,
    )


def evaluate_saved(loaded: LoadedModel, events, items, split: str = "test") -> SavedEvaluation:
    if split not in SPLITS:
        raise ValueError(f"split {split!r}: choose one of {sorted(SPLITS)}")
    data = SequenceData.from_frames(events, items, loaded.cfg.data)
    mapped = in_model_space(loaded, data)
    if mapped.n_users < 10:
        raise ValueError(f"{mapped.n_users} users: too few to split into train/validation/test")
    result = evaluate(loaded.model, mapped, SPLITS[split], index=loaded.index)
    return SavedEvaluation(result.metrics, result.n_users, len(data.flat) - len(mapped.flat), len(data.flat),
                           mapped.fingerprint() == loaded.manifest.get("data_fingerprint"))
