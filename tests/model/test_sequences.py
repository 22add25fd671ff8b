import numpy as np
import pandas as pd

from model.sequences import SequenceData


def test_split_is_8_1_1_and_deterministic(tiny_data, tiny_cfg):
    counts = np.bincount(tiny_data.split, minlength=3)
    assert counts.tolist() == [96, 12, 12]
    ev_again = SequenceData.from_frames(*__import__("tests.model.conftest", fromlist=["x"]).make_events(),
                                        tiny_cfg.data)
    assert (ev_again.split == tiny_data.split).all()


def test_eval_set_uses_first_80_percent_as_history_and_rest_as_targets(tiny_data):
    es = tiny_data.eval_set(2)
    for row, u in enumerate(es.users):
        seq = tiny_data.sequence(u)
        cut = int(len(seq) * 0.8)
        hist = es.histories[row][es.histories[row] > 0]
        assert hist.tolist() == seq[:cut][-tiny_data.cfg.maxlen:].tolist()
        assert sorted(es.targets[row][es.targets[row] >= 0].tolist()) == sorted(set(seq[cut:].tolist()))


def test_window_batches_align_inputs_and_next_item_targets(tiny_data):
    rng = np.random.default_rng(0)
    inputs, targets = next(tiny_data.window_batches(8, rng))
    real = inputs > 0
    assert ((targets > 0) == real).all()
    # the target at t is the input at t+1 wherever both are inside the window
    both = real[:, 1:] & real[:, :-1]
    assert (targets[:, :-1][both] == inputs[:, 1:][both]).all()


def test_cut_batches_history_precedes_target(tiny_data):
    rng = np.random.default_rng(0)
    hist, target = next(tiny_data.cut_batches(8, rng))
    assert (target > 0).all() and (hist[:, -1] > 0).all()


def test_from_parquet_gives_the_same_sequences_as_from_frames(tmp_path, tiny_cfg):
    """The streaming reader must keep from_frames' order: by user, then time, ties in file order."""
    import pyarrow.parquet as pq

    from features.events import events_to_arrow, items_to_arrow
    from tests.model.conftest import make_events

    ev, items = make_events(seed=3)
    rng = np.random.default_rng(1)
    ev = ev.iloc[rng.permutation(len(ev))].reset_index(drop=True)  # shuffled file order
    ev.loc[ev.index[:40], "event_timestamp"] = 5  # ties whose order only the file gives
    ev["event_timestamp"] = pd.to_datetime(ev["event_timestamp"], unit="s", utc=True)
    pq.write_table(events_to_arrow(ev), tmp_path / "events.parquet")  # unsorted, as a user's file may be
    pq.write_table(items_to_arrow(items), tmp_path / "items.parquet")
    framed = SequenceData.from_frames(ev, items, tiny_cfg.data)
    streamed = SequenceData.from_parquet(tmp_path / "events.parquet", tmp_path / "items.parquet", tiny_cfg.data,
                                         batch_rows=97)  # several batches
    assert streamed.fingerprint() == framed.fingerprint()
    assert (streamed.item_category == framed.item_category).all()
    assert (streamed.item_attributes == framed.item_attributes).all()
    assert streamed.n_attributes == framed.n_attributes > 0


def test_from_parquet_names_missing_columns(tmp_path, tiny_cfg):
    import pyarrow as pa
    import pyarrow.parquet as pq
    import pytest

    pq.write_table(pa.table({"user": [1, 2], "item_id": [3, 4]}), tmp_path / "e.parquet")
    with pytest.raises(ValueError, match="user_id and item_id"):
        SequenceData.from_parquet(tmp_path / "e.parquet", None, tiny_cfg.data)
