"""Fixtures shared across the test packages."""

import pytest

from model.config import load_config
from model.training.pipeline import train_model
from tests.model.conftest import make_events


@pytest.fixture(scope="session")
def tiny_model_folder(tmp_path_factory):
    """A real saved model: one epoch of the tiny preset on a few synthetic users (a few seconds)."""
    events, items = make_events(n_users=60, n_items=40)
    cfg = load_config("tiny", ["model=gemirec", "train.max_epochs=1", "train.n_negatives=16",
                               "train.threads=1"])
    return train_model(events, items, cfg, tmp_path_factory.mktemp("tiny"), progress=False).folder
