"""The equal-budget campaign's grid is the one issue #23 lists, and it reuses only runs that compute the
same thing: same config, one thread, not cut by a time budget."""

import json

from benchmarks import campaign_equal as ce
from benchmarks import run, tuning
from model.config import load_config


def test_the_grid_is_the_issues():
    for model in ("single", "youtubednn", "gemirec"):
        assert ce.grid(model) == [(1e-3, None), (2e-3, None), (3e-3, None)]
    for model in ("mind", "comirec-sa", "comirec-dr"):
        assert ce.grid(model) == [(1e-3, 1), (1e-3, 4), (3e-3, 1), (3e-3, 4)]
    assert ce.MODELS == ["single", "youtubednn", "mind", "comirec-sa", "comirec-dr", "gemirec"]
    assert ce.SEEDS == 3 and ce.THREADS == 1
    assert ce.DATASETS[:2] == ["ml-100k", "lastfm-s3rec"] and len(ce.DATASETS) == 6


def test_every_candidate_config_is_the_grid_point_on_one_thread():
    base = load_config("long", [])
    for model in ce.MODELS:
        for lr, k in ce.grid(model):
            options = ce.candidates(base, model, lr, k, seed=0)
            assert not options[0][1] and options[0][0].train.max_time_s == ce.NO_BUDGET_S  # what a new run trains
            for cfg, _ in options:
                assert tuning.effective_lr(cfg.to_dict()) == lr and cfg.train.threads == 1
                assert k is None or cfg.multi.n_interests == k
    # the long preset's GemiRec lr 2e-3 is reused as it is spelled there (gemirec.lr, train.lr 1e-3)
    preset = ce.candidates(base, "gemirec", 2e-3, None, 0)
    assert any(c.gemirec.lr == 2e-3 and c.train.lr == 1e-3 and budgeted for c, budgeted in preset)


def _cache(tmp_path, monkeypatch, cfg, threads: int, stopped: str, name: str = "old label") -> None:
    monkeypatch.setattr(ce, "CACHE", tmp_path)
    key = run.run_key("d", "fp", cfg)
    raw = cfg.to_dict()
    raw["train"]["threads"] = threads
    (tmp_path / "d").mkdir(exist_ok=True)
    (tmp_path / "d" / f"{name}-s0-{key}.json").write_text(json.dumps({"config": raw, "stopped": stopped}))


def test_a_cached_run_is_reused_only_on_one_thread_and_uncut_by_its_budget(tmp_path, monkeypatch):
    base = load_config("long", [])
    options = ce.candidates(base, "comirec-sa", 3e-3, 1, seed=0)
    budgeted = next(c for c, b in options if b)
    _cache(tmp_path, monkeypatch, budgeted, threads=0, stopped="early_stopping")
    assert ce.find_cached("d", "fp", options, 0) is None  # made with torch's default threads
    _cache(tmp_path, monkeypatch, budgeted, threads=1, stopped="time_budget")
    assert ce.find_cached("d", "fp", options, 0) is None  # the budget cut it: not the no-budget run
    _cache(tmp_path, monkeypatch, budgeted, threads=1, stopped="early_stopping")
    assert ce.find_cached("d", "fp", options, 0)["stopped"] == "early_stopping"
    assert ce.find_cached("d", "fp", ce.candidates(base, "comirec-sa", 1e-3, 1, 0), 0) is None  # another lr
