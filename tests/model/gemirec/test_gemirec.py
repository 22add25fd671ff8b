import copy

import numpy as np
import pytest
import torch

from model.config import replace
from model.evaluation.evaluate import build_index, evaluate
from model.gemirec.mirm import MERGES
from model.persistence.saved import ModelFolderError, load_model, save_model
from model.training.train import fit, make_model, seed_everything


def test_staged_schedule_logs_dictionary_and_generator_diagnostics(trained):
    cfg, model, result = trained
    assert int(model.stage) == 1 and bool(model.dictionary.initialised)
    last = result.history[-1]
    for key in ("topk_hit", "oracle_recall@50", "code_perplexity_l1", "dead_code_share_l1",
                "code_perplexity_l2"):
        assert key in last and np.isfinite(last[key])
    assert result.best_epoch >= int(model.joint_from) >= 1  # a warm-up epoch is never the kept model
    assert "topk_hit" not in result.history[0]
    first_joint = result.history[int(model.joint_from)]
    assert "code_churn_l1" not in first_joint  # k-means made the first table: no earlier one to compare
    churn = [row["code_churn_l1"] for row in result.history[int(model.joint_from) + 1:]]
    assert churn and all(0 <= c <= 1 for c in churn)


def test_code_churn_is_the_share_of_items_whose_code_moved(trained):
    model = copy.deepcopy(trained[1])  # refreshing re-assigns the table: keep the shared fixture as it is
    model.refresh_codes()  # the kept table was made at its epoch's start, before that epoch's steps
    model.refresh_codes()
    assert model._logs["code_churn_l1"] == 0.0  # same weights, same table
    kept = model.item_codes.clone()
    model.item_codes[1:4, 0] = (model.item_codes[1:4, 0] + 1) % model.cfg.gemirec.codebook_size
    model.refresh_codes()
    assert model._logs["code_churn_l1"] == pytest.approx(3 / (len(kept) - 1))
    assert torch.equal(model.item_codes, kept)


@pytest.mark.parametrize("merge", MERGES)
def test_every_merge_returns_distinct_valid_items(trained, tiny_data, merge):
    cfg, model, _ = trained
    m = make_model(replace(cfg, gemirec={"merge": merge}), tiny_data)
    m.load_state_dict(model.state_dict())
    rec = m.recommend(tiny_data.eval_set(2).histories, build_index(m), 20)
    assert rec.interest_codes.shape == (len(rec.ranked), cfg.multi.n_interests, 2)
    assert np.allclose(rec.interest_probs.sum(1), 1.0, atol=1e-5)
    for row, codes in zip(rec.ranked, rec.interest_codes):
        valid = row[row >= 0]
        assert len(valid) == 20 and len(set(valid.tolist())) == 20
        assert len({tuple(c) for c in codes.tolist()}) == len(codes)  # distinct interests


def test_no_mipdm_ablation_and_family_restriction_run(trained, tiny_data):
    cfg, model, _ = trained
    for changes, name in (({}, "gemirec-no-mipdm"), ({"restrict_family": True}, "gemirec")):
        m = make_model(replace(cfg, model=name, gemirec=changes), tiny_data)
        m.load_state_dict(model.state_dict())
        assert 0.0 <= evaluate(m, tiny_data, 2).metrics["recall@50"] <= 1.0


def test_save_load_round_trip_gives_identical_recommendations(trained, tiny_data, tmp_path):
    cfg, model, _ = trained
    folder = save_model(model, tiny_data, cfg, tmp_path / "m", metrics={"recall@50": 0.5})
    loaded = load_model(folder)
    histories = [tiny_data.item_ids[tiny_data.sequence(u)].tolist() for u in range(10)]
    a = loaded.recommend(histories, 30)
    direct = model.recommend(loaded.histories(histories), build_index(model), 30)
    ids = np.concatenate([[-1], tiny_data.item_ids[1:]])
    assert np.array_equal(a.ranked, ids[direct.ranked])
    assert np.array_equal(a.interest_codes, direct.interest_codes)
    b = load_model(folder).recommend(histories, 30)
    assert a.ranked.tobytes() == b.ranked.tobytes()
    assert (folder / "interests.json").exists() and (folder / "item_codes.parquet").exists()


def test_folder_with_an_ivf_index_serves_and_takes_a_search_breadth(trained, tiny_data, tmp_path):
    import faiss

    from serving.runtime import build_snapshot

    cfg, model, _ = trained
    folder = save_model(model, tiny_data, cfg, tmp_path / "m", index_kind="ivf")
    assert isinstance(load_model(folder).index.index, faiss.IndexIVF)
    snap = build_snapshot(folder, "v1", index_breadth=10**6)  # clamped to every list: exact answers
    assert snap.loaded.index.index.nprobe == snap.loaded.index.index.nlist
    histories = [tiny_data.item_ids[tiny_data.sequence(u)].tolist() for u in range(10)]
    exact = model.recommend(snap.loaded.histories(histories), build_index(model), 30)
    got = snap.loaded.recommend(histories, 30)
    ids = np.concatenate([[-1], tiny_data.item_ids[1:]])
    assert np.array_equal(got.ranked, ids[exact.ranked])


def test_folder_with_an_ivfpq_index_serves_exact_answers_at_full_breadth(trained, tiny_data, tmp_path):
    from serving.runtime import build_snapshot

    cfg, model, _ = trained
    folder = save_model(model, tiny_data, cfg, tmp_path / "m", index_kind="ivfpq")
    snap = build_snapshot(folder, "v1", index_breadth=10**6)
    assert not snap.loaded.index.exact and snap.loaded.index.n_lists > 1
    histories = [tiny_data.item_ids[tiny_data.sequence(u)].tolist() for u in range(10)]
    exact = model.recommend(snap.loaded.histories(histories), build_index(model), 30)
    got = snap.loaded.recommend(histories, 30)  # 32 × 30 candidates re-scored: the whole tiny catalogue
    ids = np.concatenate([[-1], tiny_data.item_ids[1:]])
    assert np.array_equal(got.ranked, ids[exact.ranked])


def test_tampered_or_truncated_folder_is_refused(trained, tiny_data, tmp_path):
    cfg, model, _ = trained
    folder = save_model(model, tiny_data, cfg, tmp_path / "m")
    with open(folder / "weights.pt", "ab") as f:
        f.write(b"x")
    with pytest.raises(ModelFolderError, match="weights.pt"):
        load_model(folder)
    (folder / "index.faiss").unlink()
    with pytest.raises(ModelFolderError):
        load_model(folder)


def test_weights_file_holds_tensors_only(trained, tiny_data, tmp_path):
    cfg, model, _ = trained
    folder = save_model(model, tiny_data, cfg, tmp_path / "m")
    state = torch.load(folder / "weights.pt", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())


@pytest.mark.parametrize("restrict", [True, False])
def test_serving_path_with_a_pinned_item_matrix_matches_the_faiss_path(trained, tiny_data, restrict):
    """Serving takes the top lists and partitions from one product (exact_search_with_partition); the
    answers must be those of the FAISS search + separate partition that evaluation uses, and with the
    family restriction each interest's list is the exact top of its own family in both."""
    _, model, _ = trained
    index = build_index(model)
    histories = tiny_data.eval_set(2).histories[:50]
    chosen = model.cfg
    # the merge the fused path serves
    model.cfg = replace(chosen, gemirec={"merge": "mixture", "restrict_family": restrict})
    try:
        plain = model.recommend(histories, index, 30)
        model.pin_item_matrix(index.vectors())
        fused = model.recommend(histories, index, 30)
    finally:
        model.pin_item_matrix(None)
        model.cfg = chosen
    assert plain.merge_lse is not None
    assert np.array_equal(fused.ranked, plain.ranked)
    np.testing.assert_allclose(fused.merge_lse, plain.merge_lse, rtol=1e-5)
    assert np.array_equal(fused.per_interest, plain.per_interest)
    if restrict:
        family = model.item_codes[:, 0].numpy()
        vectors = index.vectors()
        for u in range(5):
            for k, code in enumerate(plain.interest_codes[u, :, 0]):
                members = np.flatnonzero(family[1:] == code)
                got = plain.per_interest[u, k]
                assert len(got[got >= 0]) == min(30, len(members))  # full, not cut by a global top list
                want = members[np.argsort(-(vectors[members] @ plain.queries[u, k]))[:30]] + 1
                assert set(got[got >= 0]) == set(want)


def test_mixture_loss_window_scores_the_items_ahead(trained, tiny_data):
    """mix_window = W adds −log p_mix of the items 2..W steps ahead to the inference-path loss: it grows on
    a batch with items ahead and is unchanged where each row has a single target (nothing ahead)."""
    from model.losses import CandidateSampler

    cfg, model, _ = trained
    inputs, targets = next(tiny_data.window_batches(16, np.random.default_rng(0)))
    inputs, targets = torch.as_tensor(inputs), torch.as_tensor(targets)
    last_only = torch.zeros_like(targets)
    last_only[:, -1] = targets[:, -1]

    def loss_mix(window, tgt):
        model.cfg = replace(cfg, gemirec={"mix_window": window})
        model._gen.manual_seed(0)  # same positions and negatives for both windows
        sampler = CandidateSampler(torch.as_tensor(tiny_data.item_popularity()), 64,
                                   torch.Generator().manual_seed(0))
        with torch.no_grad():
            return model.positions_loss(inputs, tgt, sampler)[1]["loss_mix"]

    model.eval()
    try:
        assert (targets[:, :-1] > 0).any()
        assert loss_mix(3, targets) > loss_mix(1, targets) + 1e-3
        assert loss_mix(3, last_only) == pytest.approx(loss_mix(1, last_only), rel=1e-6)
    finally:
        model.cfg = cfg


@pytest.mark.parametrize("tf_positions", [0, 5, 10_000])
def test_teacher_forced_loss_sees_tf_positions_positions(trained, tiny_data, tf_positions, monkeypatch):
    """tf_positions = n teacher-forces MIRM on n random positions of the step (every one when 0 or when the
    step has fewer): the teacher-forced query call gets exactly that many rows."""
    from model.losses import CandidateSampler

    cfg, model, _ = trained
    inputs, targets = next(tiny_data.window_batches(16, np.random.default_rng(0)))
    inputs, targets = torch.as_tensor(inputs), torch.as_tensor(targets)
    n_positions = int((targets > 0).sum())
    assert n_positions > 5
    rows = []
    forward = model.query.forward

    def recording(u, e):
        if u.dim() == 2:  # the teacher-forced call: one interest per position (the mixture's u is 3-D)
            rows.append(len(u))
        return forward(u, e)

    monkeypatch.setattr(model.query, "forward", recording)
    model.cfg = replace(cfg, gemirec={"tf_positions": tf_positions})
    sampler = CandidateSampler(torch.as_tensor(tiny_data.item_popularity()), 64,
                               torch.Generator().manual_seed(0))
    try:
        loss, parts = model.positions_loss(inputs, targets, sampler)
    finally:
        model.cfg = cfg
    assert rows == [tf_positions if 0 < tf_positions < n_positions else n_positions]
    assert torch.isfinite(loss) and parts["loss_tf"] > 0


def test_history_blend_weights_interests_by_their_share_of_the_history(trained, tiny_data):
    cfg, model, _ = trained
    hist = torch.as_tensor(tiny_data.eval_set(2).histories[:20])
    try:
        with torch.no_grad():
            model.cfg = replace(cfg, gemirec={"history_blend": 0.0})
            _, codes0, p0 = model.interests(hist)
            model.cfg = replace(cfg, gemirec={"history_blend": 1.0})
            _, codes1, p1 = model.interests(hist)
    finally:
        model.cfg = cfg
    assert torch.equal(codes0, codes1)  # the blend reweights the generated interests, it picks no others
    family = model.item_codes[hist][..., 0]
    for row in range(len(hist)):
        counts = torch.stack([((family[row] == c) & (hist[row] > 0)).sum() for c in codes1[row, :, 0]])
        expected = (counts + 1e-3) / (counts + 1e-3).sum()
        torch.testing.assert_close(p1[row], expected.float(), atol=1e-5, rtol=1e-4)
    assert not torch.allclose(p0, p1)


def test_items_ahead_and_window_mean():
    from model.losses import items_ahead, window_mean

    targets = torch.tensor([[0, 5, 6, 7]])
    ahead = items_ahead(targets, 3)
    assert ahead[0, 1].tolist() == [5, 6, 7]  # the target, then the items 1 and 2 steps after it
    assert ahead[0, 3].tolist() == [7, 0, 0]  # nothing after the end of the window
    nll = torch.tensor([[1.0, 2.0, float("nan")], [3.0, 4.0, float("nan")]])
    ok = torch.tensor([[True, True, False], [True, False, False]])
    # column means over the rows that have the item (2 and 2), weighted; an empty column adds nothing
    assert window_mean(nll, ok, torch.tensor([1.0, 0.5, 0.25])).item() == pytest.approx(2.0 + 0.5 * 2.0)


def test_trimming_shared_left_padding_leaves_interests_unchanged(trained, tiny_data, monkeypatch):
    """Inference reads only the last position, so the columns that are padding in every row are dropped;
    the user vector, the generated codes and their probabilities must not change."""
    from model.baselines.towers import trim_left_padding

    _, model, _ = trained
    hist = torch.as_tensor(tiny_data.eval_set(2).histories[:8])
    short = torch.zeros_like(hist)
    short[:, -3:] = hist[:, -3:].clamp(min=1)  # at most 3 real items: most columns are padding
    assert trim_left_padding(short).shape[1] == 3
    model.eval()
    with torch.no_grad():
        u_trim, codes_trim, p_trim = model.interests(short)
        monkeypatch.setattr("model.gemirec.gemirec.trim_left_padding", lambda ids: ids)  # the full-width path
        u_full, codes_full, p_full = model.interests(short)
    assert torch.allclose(u_trim, u_full, atol=1e-5)
    assert torch.equal(codes_trim, codes_full)
    assert torch.allclose(p_trim, p_full, atol=1e-5)


def test_next_interest_recovery_separates_generator_and_dictionary(trained, tiny_data):
    """With the history's most frequent codes as interests (the no-MIPDM ablation), the generated-interest
    hit rate is by definition the codes' count reference; every rate is a share."""
    from model.gemirec.diagnostics import next_interest_recovery

    cfg, model, _ = trained
    rates = next_interest_recovery(model, tiny_data, 2)
    assert set(rates) == {"next_interest_hit", "history_topk_category_hit", "history_topk_code_hit"}
    assert all(0.0 <= v <= 1.0 for v in rates.values())
    model.cfg = replace(cfg, gemirec={"interest_source": "history"})
    try:
        as_history = next_interest_recovery(model, tiny_data, 2)
    finally:
        model.cfg = cfg
    assert as_history["next_interest_hit"] == as_history["history_topk_code_hit"]
    assert as_history["history_topk_code_hit"] == rates["history_topk_code_hit"]


def test_gemirec_lr_is_its_own_step_size_and_leaves_the_baselines_alone(tiny_cfg, tiny_data, tmp_path):
    cfg = replace(tiny_cfg, gemirec={"lr": 0.002}, train={"max_epochs": 1})
    assert make_model(replace(cfg, model="comirec-sa"), tiny_data).learning_rate() == tiny_cfg.train.lr
    assert make_model(replace(tiny_cfg, model="gemirec"), tiny_data).learning_rate() == tiny_cfg.train.lr
    gemirec = replace(cfg, model="gemirec")
    fit(make_model(gemirec, tiny_data), tiny_data, gemirec, checkpoint_dir=tmp_path, progress=False)
    saved = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert [g["lr"] for g in saved["opt"]["param_groups"]] == [0.002]  # what the optimiser really used


def test_generator_lr_scale_gives_the_generator_alone_a_larger_step(tiny_cfg, tiny_data, tmp_path):
    cfg = replace(tiny_cfg, model="gemirec", gemirec={"lr": 0.002, "generator_lr_scale": 3.0},
                  train={"max_epochs": 1})
    model = make_model(cfg, tiny_data)
    fit(model, tiny_data, cfg, checkpoint_dir=tmp_path, progress=False)
    groups = torch.load(tmp_path / "checkpoint.pt", weights_only=False)["opt"]["param_groups"]
    assert [g["lr"] for g in groups] == [0.002, pytest.approx(0.006)]
    assert len(groups[1]["params"]) == len(list(model.generator.parameters()))
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))  # every weight, once


def test_lr_decay_shrinks_the_step_after_each_joint_epoch_without_gain(tiny_cfg, tiny_data, tmp_path):
    cfg = replace(tiny_cfg, model="gemirec", train={"max_epochs": 8, "patience": 20},
                  gemirec={"warmup_epochs": 1, "lr_decay": 0.5})
    seed_everything(0)
    model = make_model(cfg, tiny_data)
    result = fit(model, tiny_data, cfg, checkpoint_dir=tmp_path, progress=False)
    best, flat = -1.0, 0  # joint epochs that did not raise validation R@50 (warm-up ones never count)
    for row in result.history[int(model.joint_from):]:
        flat += row["val_recall@50"] <= best
        best = max(best, row["val_recall@50"])
    assert flat > 0  # the tiny data plateaus within 8 epochs, so the decay is exercised
    lr = torch.load(tmp_path / "checkpoint.pt", weights_only=False)["opt"]["param_groups"][0]["lr"]
    assert lr == pytest.approx(cfg.train.lr * 0.5**flat)
