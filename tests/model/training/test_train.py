import numpy as np
import pytest

from model.config import replace
from model.evaluation.evaluate import evaluate
from model.training.train import fit, make_model, seed_everything

MODELS = ["mostpop", "youtubednn", "single", "mind", "comirec-sa", "comirec-dr"]


@pytest.mark.parametrize("name", MODELS)
def test_every_baseline_trains_and_beats_random(name, tiny_data, tiny_cfg):
    cfg = replace(tiny_cfg, model=name)
    seed_everything(0)
    model = make_model(cfg, tiny_data)
    result = fit(model, tiny_data, cfg, progress=False)
    ev = evaluate(model, tiny_data, 2)
    # 60 items, targets inside one of 4 clusters: random top-20 has recall ≈ 1/3
    assert 0.0 <= ev.metrics["recall@20"] <= 1.0
    if name != "mostpop":
        assert result.epochs_run == cfg.train.max_epochs
        assert np.isfinite(result.history[-1]["loss"])
    rec = model.recommend(tiny_data.eval_set(2).histories, None if name == "mostpop" else
                          __import__("model.evaluation.evaluate", fromlist=["x"]).build_index(model), 20)
    for row in rec.ranked:
        valid = row[row >= 0]
        assert len(set(valid.tolist())) == len(valid)  # distinct items
        assert ((valid >= 1) & (valid <= tiny_data.n_items)).all()


def test_training_resumes_from_checkpoint(tmp_path, tiny_data, tiny_cfg):
    cfg = replace(tiny_cfg, model="single", train={"max_epochs": 1})
    seed_everything(0)
    m1 = make_model(cfg, tiny_data)
    fit(m1, tiny_data, cfg, checkpoint_dir=tmp_path, progress=False)
    assert (tmp_path / "checkpoint.pt").exists()
    cfg2 = replace(cfg, train={"max_epochs": 3})
    m2 = make_model(cfg2, tiny_data)
    r2 = fit(m2, tiny_data, cfg2, checkpoint_dir=tmp_path, progress=False)
    assert r2.epochs_run == 3 and len(r2.history) == 3  # epoch 0 came from the checkpoint
    assert r2.history[0]["epoch"] == 0


def test_forced_cut_sampling_trains_youtubednn_like_comirec(tiny_data, tiny_cfg):
    cfg = replace(tiny_cfg, model="youtubednn", train={"sampling": "cut", "max_epochs": 1})
    seed_everything(0)
    model = make_model(cfg, tiny_data)
    assert model.train_mode == "cut"
    result = fit(model, tiny_data, cfg, progress=False)
    assert np.isfinite(result.history[-1]["loss"])


@pytest.mark.parametrize("name,sampling",
                         [("single", "cut"), ("comirec-sa", "positions"), ("single", "bogus")])
def test_sampling_a_model_cannot_train_with_is_refused(name, sampling, tiny_data, tiny_cfg):
    with pytest.raises(ValueError, match="sampling"):
        make_model(replace(tiny_cfg, model=name, train={"sampling": sampling}), tiny_data)


@pytest.mark.parametrize("changes", [{"routing_grad": "all"}, {"mind_head": "none"}, {"mind_head": "mlp"},
                                     {"readout_temperature": 0.07}])
def test_mind_study_variants_train_every_part(changes, tiny_data, tiny_cfg):
    """The variants of benchmarks/studies/mind_study.py: one step moves the routing map and the item embeddings."""
    import torch

    from model.losses import CandidateSampler

    cfg = replace(tiny_cfg, model="mind", multi=changes)
    seed_everything(0)
    model = make_model(cfg, tiny_data)
    hist = torch.as_tensor(tiny_data.eval_set(1).histories[:16])
    target = hist[:, -1].clone()
    sampler = CandidateSampler(torch.ones(tiny_data.n_items + 1), 8, torch.Generator().manual_seed(0))
    loss, _ = model.cut_loss(hist[:, :-1], target, sampler)
    loss.backward()
    assert torch.isfinite(loss)
    assert model.S.weight.grad is not None and model.S.weight.grad.abs().sum() > 0
    head_used = model.out[0].weight.grad is not None and model.out[0].weight.grad.abs().sum() > 0
    assert head_used == (changes.get("mind_head", "residual") != "none")


@pytest.mark.parametrize("changes", [{"routing_grad": "first"}, {"mind_head": "relu"}])
def test_unknown_mind_variant_is_refused(changes, tiny_data, tiny_cfg):
    with pytest.raises(ValueError, match="must be"):
        make_model(replace(tiny_cfg, model="mind", multi=changes), tiny_data)
