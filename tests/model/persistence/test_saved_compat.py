"""Model folders saved before `model/` was grouped into subpackages still load and answer.

The fixture folder was written by the flat layout's `model.saved.save_model` (a tiny GemiRec, two levels
of four codes). A folder holds tensors, JSON and parquet only, never pickled classes, so the move must
not change what it loads to.
"""

import shutil
from pathlib import Path

import numpy as np

from model.persistence.saved import load_model

FOLDER = Path(__file__).resolve().parents[2] / "fixtures" / "model-saved-before-regroup"


def test_folder_saved_before_the_regroup_loads_and_recommends(tmp_path):
    folder = shutil.copytree(FOLDER, tmp_path / "model")
    loaded = load_model(folder)
    assert loaded.cfg.model == "gemirec"
    assert loaded.index is not None and loaded.index.n_items == len(loaded.items)
    history = loaded.item_ids[:5].tolist()
    rec = loaded.recommend([history], n=10)
    ranked = rec.ranked[0]
    assert len(ranked) == 10
    assert set(ranked[ranked >= 0]) <= set(loaded.item_ids.tolist())
    # deterministic: a second load gives the same answer
    again = load_model(folder).recommend([history], n=10).ranked[0]
    np.testing.assert_array_equal(ranked, again)
