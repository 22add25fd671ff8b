"""The capacity command (issue #23): it trains each (dataset, model, dim) once, a rerun trains nothing, and
the margin panel takes the equal-budget source over the older campaign table."""

import json

import pytest

from benchmarks import capacity, equal_tables, run
from model.config import load_config, replace

# GemiRec warms up for one epoch (benchmarks/scale_stages.py's overrides) and trains its joint stage in the
# second: with one epoch in all it would stop at the warm-up, a single-vector model
TINY = ["--datasets", "simulator-tiny", "--dims", "8,16", "--models", "single,gemirec", "--seed", "0",
        "--set", "train.max_epochs=2", "--set", "train.min_epochs=1", "--set", "gemirec.warmup_epochs=1",
        "--set", "gemirec.min_warmup_epochs=1"]


@pytest.fixture
def dirs(tmp_path, monkeypatch):
    cache, results = tmp_path / "cache", tmp_path / "results"
    # equal_tables bound the cache path at import: both modules must look in the test's cache
    monkeypatch.setattr(run, "CACHE", cache)
    monkeypatch.setattr(equal_tables, "CACHE", cache)
    results.mkdir()
    return cache, results


def test_the_grid_trains_once_writes_its_report_and_a_rerun_trains_nothing(dirs, monkeypatch):
    cache, results = dirs
    dry = capacity.main(TINY + ["--results", str(results), "--dry-run"])
    assert [r["how"] for r in dry["runs"]] == ["to train"] * 4 and not (results / "capacity.json").exists()

    summary = capacity.main(TINY + ["--results", str(results)])
    saved = json.loads((results / "capacity.json").read_text())
    runs = saved["runs"]
    assert sorted((r["model"], r["dim"]) for r in runs) == [("gemirec", 8), ("gemirec", 16), ("single", 8),
                                                             ("single", 16)]
    assert all(r["how"] == "trained" and r["test_recall@50"] > 0 for r in runs)
    records = sorted((cache / "simulator-tiny").glob("*.json"))
    assert len(records) == 4
    for path in records:  # the dim asked for, one thread, no time budget
        rec = json.loads(path.read_text())
        cfg = rec["config"]
        assert cfg["backbone"]["dim"] in (8, 16) and cfg["train"]["threads"] == 1
        assert cfg["train"]["max_time_s"] == capacity.NO_BUDGET_S
        if rec["model"] == "gemirec":  # its kept epoch is a joint one (the generator logs its top-K hit)
            assert rec["best_epoch"] >= 1 and "topk_hit" in rec["history"][rec["best_epoch"]]
    assert (results / "capacity.png").stat().st_size > 0
    assert "simulator-tiny" in (results / "capacity.md").read_text()
    entry = saved["datasets"]["simulator-tiny"]
    best = {m: max((r for r in runs if r["model"] == m), key=lambda r: r["val_recall@50"])["dim"]
            for m in ("single", "gemirec")}
    assert entry["chosen_dim"] == best
    at = {(r["model"], r["dim"]): r["test_recall@50"] for r in runs}
    assert entry["ratio_at_chosen"] == pytest.approx(at[("gemirec", best["gemirec"])]
                                                     / at[("single", best["single"])])
    assert saved["catalogue"]["simulator-tiny"] > 0
    # no dim-64 run and no campaign table: the tiny set has no margin point
    assert summary["margins"] == []

    def no_training(*args, **kwargs):
        raise AssertionError("a cached run was trained again")

    monkeypatch.setattr(run, "fit", no_training)
    mtimes = [p.stat().st_mtime_ns for p in records]
    again = capacity.main(TINY + ["--results", str(results)])
    assert all(r["how"] == "cached" for r in again["runs"])
    assert [p.stat().st_mtime_ns for p in records] == mtimes
    report = capacity.main(TINY + ["--results", str(results), "--report"])
    assert [r["test_recall@50"] for r in report["runs"]] == [r["test_recall@50"] for r in summary["runs"]]


def _record(cache, ds: str, model: str, seed: int, test: float, val: float, per_user: list[float]) -> dict:
    # the long preset gives GemiRec its own lr (2e-3): cleared, so both models trained at the chosen 1e-3
    cfg = replace(load_config("long"), model=model, train={"seed": seed, "lr": 1e-3, "threads": 1},
                  gemirec={"lr": 0.0})
    rec = {"model": model, "label": f"eq {model}", "seed": seed, "config": cfg.to_dict(),
           "test": {"recall@50": test}, "val": {"recall@50": val}, "test_per_user_recall@50": per_user}
    (cache / ds).mkdir(parents=True, exist_ok=True)
    (cache / ds / f"eq {model}-s{seed}-x.json").write_text(json.dumps(rec))
    return rec


def test_the_margin_takes_the_equal_budget_over_the_older_table_and_capacity_runs_last(dirs):
    cache, results = dirs
    ds = "ml-100k"
    older = {"gemirec": {"seeds": [0], "test": {"recall@50": [0.5]}},
             "single": {"seeds": [0], "test": {"recall@50": [0.25]}}}
    (results / f"{ds}.json").write_text(json.dumps(older))
    capacity_rows = [{"dataset": "lastfm-s3rec", "model": m, "dim": d, "how": "cached", "test_recall@50": v}
                     for m, d, v in (("single", 64, 0.1), ("gemirec", 64, 0.13), ("gemirec", 32, 0.5))]
    catalogue = {ds: 1682, "lastfm-s3rec": 3646}

    points = {p["dataset"]: p for p in capacity.margins(results, capacity_rows, catalogue)}
    assert points[ds]["source"] == "older" and points[ds]["ratio"] == pytest.approx(2.0)
    assert points["lastfm-s3rec"]["source"] == "capacity" and points["lastfm-s3rec"]["ratio"] == pytest.approx(1.3)

    g = _record(cache, ds, "gemirec", 0, 0.3, 0.31, [0.4, 0.2, 0.3])
    s = _record(cache, ds, "single", 0, 0.2, 0.21, [0.2, 0.2, 0.2])
    campaign = {m: {"options": 3, "chosen": {"lr": 1e-3, "K": None},
                    "seeds": {"0": {"test_recall@50": r["test"]["recall@50"], "val_recall@50": r["val"]["recall@50"]}}}
                for m, r in (("gemirec", g), ("single", s))}
    (results / f"equal-{ds}.json").write_text(json.dumps(campaign))
    point = {p["dataset"]: p for p in capacity.margins(results, capacity_rows, catalogue)}[ds]
    assert point["source"] == "equal" and point["ratio"] == pytest.approx(1.5)  # per-user means 0.3 / 0.2
    assert point["lo"] is not None and point["n_items"] == 1682 and point["label"] == ds


def test_gowalla_is_labelled_unordered():
    assert capacity.display("gowalla-lightgcn") == "gowalla-lightgcn (no order)"
    assert capacity.display("amazon-beauty-s3rec") == "amazon-beauty-s3rec"
