"""The equal-budget tables are read from the campaign's choices and the cached records of the chosen
points: hand-made records whose answers are known."""

import json

import numpy as np
import pytest

from benchmarks import equal_tables as et

DS = "ml-100k"
BASE = np.random.default_rng(0).uniform(0.2, 0.4, 200)


def _record(model, seed, lr, k, per_user, diversity=None, selected=None, gemirec_lr=0.0):
    test = {"recall@50": float(np.mean(per_user)), "ndcg@50": 0.5 * float(np.mean(per_user)), **(diversity or {})}
    return {"model": model, "seed": seed, "test": test, "val": {"recall@50": 0.1 + 0.01 * seed + lr},
            "config": {"model": model, "train": {"lr": lr}, "multi": {"n_interests": k},
                       "gemirec": {"lr": gemirec_lr, "select_on_validation": True}},
            "test_per_user_recall@50": list(per_user), "selected": selected}


def _campaign(tmp_path, monkeypatch, models: dict) -> None:
    """models: name -> (grid [(lr, K)], chosen (lr, K), {seed: record}); records also go to the cache with
    a decoy of the same model and seed at another lr."""
    results, cache = tmp_path / "results", tmp_path / "cache" / DS
    results.mkdir()
    cache.mkdir(parents=True)
    campaign = {}
    for name, (grid, (lr, k), recs) in models.items():
        for seed, rec in recs.items():
            (cache / f"{name}-s{seed}.json").write_text(json.dumps(rec))
            # same numbers, another lr: only the chosen point's record may be read
            decoy = dict(rec, config=dict(rec["config"], train={"lr": 9e-3}, gemirec={"lr": 9e-3}))
            (cache / f"{name}-decoy-s{seed}.json").write_text(json.dumps(decoy))
        campaign[name] = {"grid": [{"lr": a, "K": b} for a, b in grid], "options": len(grid),
                          "chosen": {"lr": lr, "K": k},
                          "seeds": {str(s): {"test_recall@50": r["test"]["recall@50"],
                                             "val_recall@50": r["val"]["recall@50"]} for s, r in recs.items()}}
    (results / f"equal-{DS}.json").write_text(json.dumps(campaign))
    monkeypatch.setattr(et, "RESULTS", results)
    monkeypatch.setattr(et, "CACHE", tmp_path / "cache")


@pytest.fixture
def tables(tmp_path, monkeypatch):
    lr_grid = [(1e-3, None), (2e-3, None), (3e-3, None)]
    k_grid = [(1e-3, 1), (1e-3, 4), (3e-3, 1), (3e-3, 4)]
    single = {s: _record("single", s, 3e-3, 4, f * BASE) for s, f in enumerate((1.0, 1.1, 0.9))}
    # ComiRec-SA 1.5 × single on every user; GemiRec 1.2 ×: against single met, against SA failed
    sa = {s: _record("comirec-sa", s, 1e-3, 1, 1.5 * f * BASE) for s, f in enumerate((1.0, 1.1, 0.9))}
    sa[2]["test_per_user_recall@50"] = None  # cached before per-user results were kept
    div = {"distinct_categories@50": 6.0, "ild@50": 0.4, "coverage@50": 0.2}
    g = {s: _record("gemirec", s, 1e-3, 4, 1.2 * f * BASE, div, {"K": 4 * (1 + s % 2)}, gemirec_lr=2e-3)
         for s, f in enumerate((1.0, 1.1, 0.9))}
    _campaign(tmp_path, monkeypatch, {"single": (lr_grid, (3e-3, None), single),
                                      "comirec-sa": (k_grid, (1e-3, 1), sa),
                                      "gemirec": (lr_grid, (2e-3, None), g)})
    return et.build()


def test_each_row_is_the_chosen_point_with_its_options_and_sample_std(tables):
    models = tables[DS]["models"]
    assert models["single"]["lr"] == 3e-3 and models["single"]["options"] == 3
    assert models["comirec-sa"]["K"] == 1 and models["comirec-sa"]["options"] == 4
    g = models["gemirec"]
    # 3 learning rates × the 24 post-training settings chosen on validation (K 4/8, u share, blend, restriction)
    assert (g["grid_options"], g["post_training_options"], g["options"]) == (3, 24, 72)
    r = models["single"]["test_recall@50"]
    means = [f * BASE.mean() for f in (1.0, 1.1, 0.9)]
    assert r["n"] == 3 and r["mean"] == pytest.approx(np.mean(means))
    assert r["std"] == pytest.approx(np.std(means, ddof=1)) and r["std"] != pytest.approx(np.std(means))
    assert models["comirec-sa"]["seeds"] == [0, 1, 2] and models["comirec-sa"]["per_user_seeds"] == [0, 1]


def test_ratios_pair_the_seeds_both_models_stored_and_judge_them(tables):
    r = tables[DS]["ratios"]
    assert r["single"]["seeds"] == 3 and r["single"]["ratio"] == pytest.approx(1.2)
    assert r["single"]["lo"] == pytest.approx(1.2) and et.judge(r["single"], 1.0) == "met"
    best = r["best baseline"]
    assert best["model"] == "comirec-sa" == r["best multi-interest"]["model"]
    assert best["seeds"] == 2 and best["ratio"] == pytest.approx(0.8) and et.judge(best, 1.0) == "failed"
    assert not et.moonshot(best)


def test_a_ratio_whose_interval_straddles_the_bar_is_undecided():
    rng = np.random.default_rng(1)
    noisy = rng.uniform(0, 1, 60)
    a = {"per_user_seeds": [0], "per_user": {0: list(noisy)}, "test_recall@50": {"mean": noisy.mean()}}
    b = {"per_user_seeds": [0], "per_user": {0: list(noisy[::-1])}, "test_recall@50": {"mean": noisy.mean()}}
    p = et.paired(a, b)
    assert p["lo"] < 1.0 < p["hi"] and et.judge(p, 1.0) == "undecided"
    b["per_user_seeds"] = []  # no per-user results in common: a point ratio, no verdict
    assert et.paired(a, b)["lo"] is None and et.judge(et.paired(a, b), 1.0) == "undecided"


def test_the_moonshot_needs_the_point_at_1_10_and_the_lower_end_at_1_05():
    assert et.moonshot({"ratio": 1.12, "lo": 1.06, "hi": 1.2})
    assert not et.moonshot({"ratio": 1.12, "lo": 1.04, "hi": 1.2})
    assert not et.moonshot({"ratio": 1.09, "lo": 1.06, "hi": 1.2})


def test_the_markdown_shows_measured_diversity_and_a_dash_where_records_predate_it(tables):
    lines = et.markdown(tables)
    g = next(x for x in lines if x.startswith("| gemirec |"))
    s = next(x for x in lines if x.startswith("| single |"))
    assert g.endswith("| 6.0 | 40.0 | 20.0 |") and "72 (3 × 24 post-training)" in g
    assert "2e-3 (K 4/8 after training)" in g
    assert s.endswith("| – | – | – |")
    row = next(x for x in lines if x.startswith(f"| {DS} |"))
    assert "1.200 [1.200, 1.200] (single, 3 seeds): **met**" in row and "0.800 [0.800, 0.800]" in row
    assert row.endswith("| not reached |")
    assert any("comirec-sa 2 of 3" in x for x in lines)


def test_write_leaves_the_per_user_arrays_out_of_the_json(tables):
    et.write(tables)
    saved = json.loads((et.RESULTS / "equal.json").read_text())
    assert "per_user" not in saved[DS]["models"]["gemirec"]
    assert saved[DS]["ratios"]["single"]["model"] == "single"
    assert (et.RESULTS / "equal.md").read_text().startswith("# Equal tuning budget")


def test_summary_verdicts_use_the_decision_bars_and_the_readme_row_the_means(tables):
    from benchmarks import summary

    out = et.verdict_lines(tables, {DS})
    row = next(x for x in out if x.startswith(f"| {DS} |"))
    multi, single, best = row.split(" | ")[1:4]
    assert multi.endswith("≥ 1.00 **failed**; ≥ 1.10 **failed**")  # 0.8 × ComiRec-SA
    assert single.endswith("≥ 1.00 **met**; ≥ 1.05 **met**")  # 1.2 × single, a long-history dataset
    assert "(comirec-sa, 2 seeds)" in best and "reached on no dataset." in out[-1]
    assert et.verdict_lines({}, {DS}) == []  # no equal-budget campaign yet: no section
    g, s, sa = (100 * tables[DS]["models"][m]["test_recall@50"]["mean"] for m in ("gemirec", "single", "comirec-sa"))
    assert summary._equal_row(DS, tables[DS]) == (f"| {DS} | equal | {s:.2f} | {sa:.2f} (comirec-sa) | {g:.2f} "
                                                  f"| {g / sa:.3f} | {g / s:.3f} |")


def test_a_campaign_still_running_leaves_out_what_has_not_chosen(tmp_path, monkeypatch):
    single = {s: _record("single", s, 1e-3, 4, BASE) for s in range(3)}
    _campaign(tmp_path, monkeypatch, {"single": ([(1e-3, None)], (1e-3, None), single)})
    campaign = json.loads((et.RESULTS / f"equal-{DS}.json").read_text())
    campaign["gemirec"] = {"grid": [{"lr": 1e-3, "K": None}], "options": 3}  # grid not finished: no choice
    (et.RESULTS / f"equal-{DS}.json").write_text(json.dumps(campaign))
    t = et.build()[DS]
    assert list(t["models"]) == ["single"] and t["ratios"] == {}
    assert f"| {DS} | – | – | – | – | – |" in et.markdown({DS: t})
