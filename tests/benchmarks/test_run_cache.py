"""The campaign cache and threads (issue #23): a run pinned to a thread count is its own cache entry, runs
cached before stay reusable, and the per-dataset tables carry what the verdicts read."""

import json

import pytest

from benchmarks import run, tuning
from features.datasets import load_dataset
from model.config import load_config, replace
from model.sequences import SequenceData


@pytest.fixture(scope="module")
def tiny():
    base = load_config("tiny", ["train.max_epochs=2"])
    inter = load_dataset("simulator-tiny")
    return base, SequenceData.from_frames(inter.events, inter.items, base.data)


def _cfg(base, threads: int, model: str = "single"):
    return replace(base, model=model, train={"seed": 0, "threads": threads})


def test_the_key_leaves_threads_out_so_earlier_records_keep_their_names(tiny):
    base, data = tiny
    keys = {run.run_key("simulator-tiny", data.fingerprint(), _cfg(base, t)) for t in (0, 1, 2)}
    assert len(keys) == 1


def test_a_record_is_reused_only_for_the_thread_count_that_made_it(tmp_path, monkeypatch, tiny):
    base, data = tiny
    monkeypatch.setattr(run, "CACHE", tmp_path)
    cfg1 = _cfg(base, 1)
    key = run.run_key("simulator-tiny", data.fingerprint(), cfg1)
    legacy = tmp_path / "simulator-tiny" / f"single-s0-{key}.json"
    legacy.parent.mkdir(parents=True)
    legacy.write_text(json.dumps({"config": cfg1.to_dict(), "made": "legacy, 1 thread"}))
    path, rec = run.cached_record("simulator-tiny", "single", cfg1, key)
    assert rec["made"] == "legacy, 1 thread" and path == legacy
    path, rec = run.cached_record("simulator-tiny", "single", _cfg(base, 2), key)
    assert rec is None and path.name.endswith("-t2.json")  # made with 1 thread: not reused for 2
    path, rec = run.cached_record("simulator-tiny", "single", _cfg(base, 0), key)
    assert rec["made"] == "legacy, 1 thread" and path == legacy  # --threads 0: the earlier lookup


def test_a_pinned_run_takes_the_plain_name_when_free_and_a_suffix_beside_another_thread_count(
        tmp_path, monkeypatch, tiny):
    base, data = tiny
    monkeypatch.setattr(run, "CACHE", tmp_path)
    folder = tmp_path / "simulator-tiny"
    first = run.run_one("simulator-tiny", data, _cfg(base, 1), "single")
    key = run.run_key("simulator-tiny", data.fingerprint(), _cfg(base, 1))
    assert [p.name for p in folder.glob("*.json")] == [f"single-s0-{key}.json"]  # the name other tools compute
    second = run.run_one("simulator-tiny", data, _cfg(base, 2), "single")  # trains: made with 1 thread
    assert sorted(p.name for p in folder.glob("*.json")) == [f"single-s0-{key}-t2.json", f"single-s0-{key}.json"]
    assert second["config"]["train"]["threads"] == 2

    def no_training(*args, **kwargs):
        raise AssertionError("a cached run was trained again")

    monkeypatch.setattr(run, "fit", no_training)
    assert run.run_one("simulator-tiny", data, _cfg(base, 1), "single") == first
    assert run.run_one("simulator-tiny", data, _cfg(base, 2), "single") == second
    assert run.run_one("simulator-tiny", data, _cfg(base, 0), "single") == first  # --threads 0: as before
    with pytest.raises(AssertionError, match="trained again"):
        run.run_one("simulator-tiny", data, _cfg(base, 3), "single")


def test_tables_carry_lr_variants_threads_and_keepable_curves(tmp_path, monkeypatch, tiny):
    base, _ = tiny

    def record(label, lr, seed=0, model="comirec-sa", k=4):
        cfg = replace(base, model=model, train={"seed": seed, "lr": lr, "threads": 1}, multi={"n_interests": k})
        hist = [{"epoch": 0, "val_recall@50": 0.1, "seconds": 1.0}, {"epoch": 1, "val_recall@50": 0.2,
                                                                      "seconds": 2.0, "topk_hit": 0.5}]
        metrics = {key: 0.1 for key, _ in run.COLUMNS}
        return {"label": label, "seed": seed, "config": cfg.to_dict(), "model": model, "test": metrics,
                "val": metrics, "test_recall@50_ci95": [0, 1], "train_seconds": 1.0, "test_eval_seconds": 0.1,
                "epochs": 2, "test_users": 10, "history": hist, "created": "t"}

    monkeypatch.setattr(run, "RESULTS", tmp_path)
    cached = [record("comirec-sa", 1e-3), record("comirec-sa-lr3e-3", 3e-3), record("comirec-sa-k1", 1e-3, k=1),
              record("gemirec", 2e-3, model="gemirec")]
    run.write_tables("d", [cached[0], cached[3]], "cmd", cached)
    table = json.loads((tmp_path / "d.json").read_text())
    sa, g = table["comirec-sa"], table["gemirec"]
    assert sa["variants"] == [[0.001, 1], [0.001, 4], [0.003, 4]] and sa["threads"] == [1]
    assert sa["post_training_options"] == 1 and g["post_training_options"] == 24
    assert g["curves"] == [[[1.0, 0.1, False], [2.0, 0.2, True]]]  # warm-up epoch: not keepable
    assert sa["curves"] == [[[1.0, 0.1, True], [2.0, 0.2, True]]]
    assert "ddof = 1" in (tmp_path / "d.md").read_text()


def test_gemirecs_own_lr_is_the_lr_it_trained_at():
    cfg = {"model": "gemirec", "train": {"lr": 1e-3}, "gemirec": {"lr": 2e-3}, "multi": {"n_interests": 4}}
    assert tuning.effective_lr(cfg) == 2e-3
    cfg["gemirec"]["lr"] = 0.0
    assert tuning.grid_point(cfg) == (1e-3, 4)


def test_tables_show_merged_list_diversity_and_a_dash_for_runs_cached_before_it(tmp_path, monkeypatch, tiny):
    base, _ = tiny
    old = {key: 0.1 for key, _ in run.COLUMNS[:9]}  # the columns a run cached before issue #23 has
    new = {**old, "distinct_categories@50": 7.5, "ild@50": 0.8, "coverage@50": 0.25}

    def record(label, metrics):
        return {"label": label, "seed": 0, "config": replace(base, model="single").to_dict(), "model": "single",
                "test": metrics, "val": metrics, "test_recall@50_ci95": [0, 1], "train_seconds": 1.0,
                "test_eval_seconds": 0.1, "epochs": 1, "test_users": 10, "history": [], "created": "t"}

    monkeypatch.setattr(run, "RESULTS", tmp_path)
    run.write_tables("d", [record("single", new), record("single-old", old)], "cmd")
    rows = {line.split(" | ")[0][2:]: line.split(" | ") for line in (tmp_path / "d.md").read_text().splitlines()
            if line.startswith("| single")}
    header = next(line for line in (tmp_path / "d.md").read_text().splitlines() if line.startswith("| model"))
    at = header.split(" | ").index("Cats@50")
    assert rows["single"][at: at + 3] == ["7.50", "80.00", "25.00"]  # a count unscaled, shares in %
    assert rows["single-old"][at: at + 3] == ["–", "–", "–"]
