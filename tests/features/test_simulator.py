import dataclasses

import numpy as np
import pandas as pd
import pytest

from features.datasets import TINY_SIMULATOR, load_dataset
from features.events import Interactions
from features.simulator import BLOCK_USERS, SimulatorConfig, iter_simulated, simulate, write_simulated

CFG = TINY_SIMULATOR


@pytest.fixture(scope="module")
def tiny():
    return simulate(CFG)


def _late_novel_share(truth: pd.DataFrame) -> float:
    """Share of users with a topic in the last 20 % of their history that the first 80 % never shows."""
    position = truth.groupby("user_id").cumcount().to_numpy()
    length = truth.groupby("user_id")["topic"].transform("size").to_numpy()
    late = position >= np.ceil(0.8 * length)
    pairs = truth.assign(late=late).groupby(["user_id", "topic"])["late"].all()
    return pairs[pairs].index.get_level_values("user_id").nunique() / truth["user_id"].nunique()


def test_deterministic_by_seed(tiny):
    data, truth = tiny
    again, truth_again = simulate(CFG)
    assert again.data_hash() == data.data_hash()
    pd.testing.assert_frame_equal(truth_again, truth)
    other, _ = simulate(dataclasses.replace(CFG, seed=1))
    assert other.data_hash() != data.data_hash()


def test_events_are_canonical_and_truth_aligned(tiny):
    data, truth = tiny
    events = data.events
    assert str(events["event_timestamp"].dtype) == "datetime64[ns, UTC]"
    assert events["user_id"].is_monotonic_increasing
    assert (events.groupby("user_id")["event_timestamp"].diff().dropna() > pd.Timedelta(0)).all()
    assert (truth["user_id"].to_numpy() == events["user_id"].to_numpy()).all()
    assert (truth["event_timestamp"] == events["event_timestamp"]).all()
    category = data.items.set_index("item_id")["category"]
    assert (category.loc[events["item_id"]].to_numpy() == truth["topic"].to_numpy()).all()
    assert len(data.items) == CFG.n_items and data.report.n_users == CFG.n_users


def test_histories_long_and_mixed(tiny):
    _, truth = tiny
    lengths = truth.groupby("user_id").size()
    assert lengths.min() >= CFG.min_length
    assert abs(lengths.mean() - CFG.mean_length) < 0.1 * CFG.mean_length
    assert truth.groupby("user_id")["topic"].nunique().mean() >= 2.5


def test_interest_evolution(tiny):
    _, truth = tiny
    # about 1 - (1 - adopt_prob)^(0.2 * mean_length) of users adopt a new interest late; measured ~0.22
    assert _late_novel_share(truth) >= 0.15
    no_adoption = simulate(dataclasses.replace(CFG, adopt_prob=0.0, drop_prob=0.0))[1]
    assert _late_novel_share(no_adoption) < _late_novel_share(truth)


def test_shift_changes_topic_mix(tiny):
    _, truth = tiny
    shifted = simulate(dataclasses.replace(CFG, shift=1.5))[1]
    base = truth["topic"].value_counts(normalize=True)
    moved = shifted["topic"].value_counts(normalize=True)
    total_variation = 0.5 * base.subtract(moved, fill_value=0).abs().sum()
    assert total_variation > 0.15


def test_chunking_does_not_change_output(tmp_path):
    cfg = dataclasses.replace(CFG, n_users=2 * BLOCK_USERS + 100, mean_length=14.0)
    data, truth = simulate(cfg)
    chunks = list(iter_simulated(cfg, chunk_users=BLOCK_USERS))
    assert len(chunks) == 3
    report = write_simulated(cfg, tmp_path / "sim", chunk_users=BLOCK_USERS)
    loaded = Interactions.load(tmp_path / "sim")
    assert loaded.data_hash() == data.data_hash()
    assert (report.n_valid, report.n_users, report.n_items) == (
        data.report.n_valid,
        data.report.n_users,
        data.report.n_items,
    )
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "sim" / "truth.parquet"), truth)


def test_save_load_round_trip(tiny, tmp_path):
    data, _ = tiny
    data.save(tmp_path / "tiny")
    back = Interactions.load(tmp_path / "tiny")
    pd.testing.assert_frame_equal(back.events, data.events)
    pd.testing.assert_frame_equal(back.items, data.items)
    assert back.report == data.report and back.data_hash() == data.data_hash()


def test_registry_and_config_checks():
    assert load_dataset("simulator-tiny").data_hash() == simulate(CFG)[0].data_hash()
    with pytest.raises(ValueError):
        SimulatorConfig(n_items=3, n_topics=8)
