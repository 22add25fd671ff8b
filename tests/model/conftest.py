"""Small synthetic interaction data for model tests (no files needed)."""

import numpy as np
import pandas as pd
import pytest

from model.config import load_config, replace
from model.sequences import SequenceData
from model.training.train import fit, make_model, seed_everything


def make_events(n_users: int = 120, n_items: int = 60, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Users walk through 4 item clusters, so sequences carry learnable structure."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        length = int(rng.integers(8, 30))
        cluster = int(rng.integers(0, 4))
        for t in range(length):
            if rng.random() < 0.15:
                cluster = int(rng.integers(0, 4))
            item = 1 + cluster * (n_items // 4) + int(rng.integers(0, n_items // 4))
            rows.append((1000 + u, item, t))
    ev = pd.DataFrame(rows, columns=["user_id", "item_id", "event_timestamp"])
    items = pd.DataFrame({
        "item_id": np.arange(1, n_items + 1),
        "category": (np.arange(n_items) // (n_items // 4)).astype(np.int64),
        "attributes": [[int(i % 7) + 1, 50 + int(i // 15)] for i in range(n_items)],
    })
    return ev, items


@pytest.fixture(scope="session")
def tiny_cfg():
    return load_config("tiny", ["train.max_epochs=2", "train.n_negatives=32", "train.threads=1"])


@pytest.fixture(scope="session")
def tiny_data(tiny_cfg):
    ev, items = make_events()
    return SequenceData.from_frames(ev, items, tiny_cfg.data)


@pytest.fixture(scope="module")
def trained(tiny_data, tiny_cfg):
    """A tiny GemiRec trained through both stages (one per test module: some tests change its settings)."""
    cfg = replace(tiny_cfg, model="gemirec", train={"max_epochs": 3},
                  gemirec={"warmup_epochs": 1, "codebook_size": 4, "n_levels": 2})
    seed_everything(0)
    model = make_model(cfg, tiny_data)
    result = fit(model, tiny_data, cfg, progress=False)
    return cfg, model, result
