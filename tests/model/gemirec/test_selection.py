import numpy as np
import pytest

from model.evaluation.evaluate import build_index
from model.gemirec.mirm import top_distinct
from model.gemirec.selection import choose_settings, grid_recall, recall_per_option, settings_grid
from model.retriever import merge_max


def test_top_distinct_equals_merge_max_on_one_list():
    rng = np.random.default_rng(0)
    for users, width, n, n_items in ((40, 90, 20, 60), (10, 12, 20, 8)):
        items = rng.integers(-1, n_items, (users, width))  # duplicates, empty slots, short rows
        scores = np.round(rng.random((users, width)), 1).astype(np.float32)  # many ties
        got = top_distinct(scores, items, n)
        assert got.shape == (users, n)
        np.testing.assert_array_equal(got, merge_max(scores[:, None], items[:, None], n))


@pytest.mark.parametrize("filter_history", [False, True])
def test_one_pass_grid_scores_each_option_as_evaluate_does(trained, tiny_data, filter_history):
    _, model, _ = trained
    data = tiny_data
    if filter_history:  # the history filter asks the merge for more items than it reports
        from dataclasses import replace as dc_replace
        data = dc_replace(tiny_data, cfg=dc_replace(tiny_data.cfg, filter_history=True))
    saved_cfg, saved_k = model.cfg, model.K
    grid = settings_grid(model.cfg.multi.n_interests)
    index = build_index(model)
    fast = grid_recall(model, data, grid, index)
    slow = recall_per_option(model, data, grid, index)
    assert model.cfg is saved_cfg and model.K == saved_k  # the reference leaves the model as it was
    np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-12)
    if not filter_history:  # the options differ, so the comparison means something (with the filter, the
        # tiny catalogue leaves every option the same 50 items)
        assert len(set(np.round(slow, 9))) > 1


def test_choice_is_the_best_restricted_option_unless_an_unrestricted_one_wins_clearly(trained, tiny_data):
    _, model, _ = trained
    saved_cfg, saved_k = model.cfg, model.K
    try:
        best, choice = choose_settings(model, tiny_data)
        grid = settings_grid(model.cfg.multi.n_interests)
        scores = dict(zip(map(str, grid), grid_recall(model, tiny_data, grid)))
    finally:
        model.cfg, model.K = saved_cfg, saved_k
    assert best == scores[str(choice)]
    restricted = max(v for k, v in scores.items() if "'restrict_family': True" in k)
    assert best >= restricted
