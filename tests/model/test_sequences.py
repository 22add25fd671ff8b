import numpy as np

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
