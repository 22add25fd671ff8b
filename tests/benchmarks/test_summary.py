import json

from benchmarks import summary


def _entry(val: list[float]) -> dict:
    return {"seeds": [0, 1], "test": {"recall@50": [0.1, 0.1]}, "val_recall@50": val}


def test_validation_ratios_use_each_models_validation_means(tmp_path, monkeypatch):
    table = {"single": _entry([0.20, 0.22]), "comirec-sa": _entry([0.18, 0.20]), "mind": _entry([0.10, 0.10]),
             "mostpop": _entry([None, None]), "gemirec": _entry([0.23, 0.23])}
    (tmp_path / "ml-100k.json").write_text(json.dumps(table))
    monkeypatch.setattr(summary, "RESULTS", tmp_path)
    rows = [r for r in summary._validation() if r.startswith("| ml-100k")]
    # 0.23 / 0.19 against the best multi-interest model, 0.23 / 0.21 against single (the best of all)
    assert rows == ["| ml-100k | 1.211 (comirec-sa) | 1.095 | 1.095 (single) |"]


def test_the_ceiling_section_is_absent_until_the_reference_has_run(tmp_path, monkeypatch):
    monkeypatch.setattr(summary, "RESULTS", tmp_path)
    assert summary._ceiling() == []


def test_the_readme_results_table_is_a_fresh_rendering():
    """README.md's table between the markers is what `python -m benchmarks.summary` writes now."""
    text = summary.README.read_text()
    assert summary.README_START in text and summary.README_END in text
    assert summary.render_readme(text) == text, "README results table is stale: run python -m benchmarks.summary"
    assert len(summary.readme_table()) >= 3  # header, rule and at least one dataset


def test_render_readme_replaces_only_the_block_between_the_markers():
    text = f"before\n{summary.README_START}\n| old | table |\n{summary.README_END}\nafter\n"
    out = summary.render_readme(text)
    assert out.startswith(f"before\n{summary.README_START}\n") and out.endswith(f"{summary.README_END}\nafter\n")
    assert "| old | table |" not in out


def test_readme_is_at_most_8000_bytes():
    assert len(summary.README.read_bytes()) <= 8000


# ---- bar verdicts (issue #23, benchmarks/verdicts.py) ----------------------------------------------------
import numpy as np  # noqa: E402

from benchmarks import verdicts  # noqa: E402


def test_a_bar_is_met_failed_or_undecided_by_the_intervals_ends():
    assert verdicts.verdict(1.10, 1.30, 1.10) == "met"  # lower end at the bar
    assert verdicts.verdict(0.90, 1.09, 1.10) == "failed"  # upper end below it
    assert verdicts.verdict(1.00, 1.20, 1.10) == "undecided"
    assert verdicts.verdict(float("nan"), float("nan"), 1.10) == "undecided"


def _paired_entry(per_user: list[list[float]], seeds=(0, 1)) -> dict:
    return {"seeds": list(seeds), "test": {"recall@50": [float(np.mean(p)) for p in per_user],
                                           "unique_ratio@50": [0.5] * len(seeds)},
            "test_per_user_recall@50": per_user, "train_seconds": [10.0] * len(seeds)}


def _write(tmp_path, monkeypatch, table: dict, name: str = "ml-100k") -> None:
    (tmp_path / f"{name}.json").write_text(json.dumps(table))
    monkeypatch.setattr(verdicts, "RESULTS", tmp_path)


def test_the_verdict_table_judges_every_bar_on_the_paired_interval(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    base = rng.uniform(0.2, 0.4, 200)
    table = {"single": _paired_entry([list(base), list(base)]),
             "comirec-sa": _paired_entry([list(0.5 * base), list(0.5 * base)]),
             "gemirec": _paired_entry([list(1.01 * base), list(1.01 * base)])}
    _write(tmp_path, monkeypatch, table)
    out = verdicts.verdict_lines(["ml-100k"], ["comirec-sa"], ["single", "comirec-sa", "gemirec"], {"ml-100k"})
    row = next(r for r in out if r.startswith("| ml-100k"))
    multi, single, best_all, ttq = row.split(" | ")[1:5]
    # twice ComiRec-SA on every user: the interval sits at 2.02; exactly 1.01 × single: [1.01, 1.01]
    assert multi.startswith("2.020 [2.020, 2.020] (comirec-sa, 2 seeds)") and multi.endswith("**met**")
    assert single.startswith("1.010") and single.endswith("**failed**")  # long-history bar 1.05
    assert best_all.endswith("**failed**") and "(single" in best_all
    assert ttq.startswith("pending")


def test_the_simulator_is_judged_against_its_ceiling_not_comirec_sa(tmp_path, monkeypatch):
    users = [0.54] * 50 + [0.56] * 50  # mean 0.55, narrow: the interval stays below 0.97
    table = {"single": _paired_entry([users, users]), "comirec-sa": _paired_entry([users, users]),
             "gemirec": _paired_entry([users, users])}
    _write(tmp_path, monkeypatch, table, "simulator")
    (tmp_path / "simulator-ceiling.json").write_text(json.dumps({"oracle": {"test_recall@50": 0.55 / 0.953}}))
    out = "\n".join(verdicts.verdict_lines(["simulator"], ["comirec-sa"], ["single", "comirec-sa", "gemirec"],
                                           {"simulator"}))
    assert "| simulator | retired" in out
    assert "= 0.953 [" in out and "goal ≥ 0.97: **failed**" in out  # the whole interval is below 0.97
    ratio, lo, hi, n = verdicts.ceiling_ci(table, 0.55 / 0.953)
    assert lo < ratio < hi and hi < 0.97 and n == 2


def test_the_unique_ratio_claim_is_counted_over_the_campaign_datasets(tmp_path, monkeypatch):
    names = [f"d{i}" for i in range(6)]
    for i, name in enumerate(names):
        g, sa = _paired_entry([[0.3] * 10]), _paired_entry([[0.2] * 10])
        g["test"]["unique_ratio@50"] = [0.9 if i < 4 else 0.1]  # GemiRec ahead on 4 of 6
        sa["test"]["unique_ratio@50"] = [0.5]
        _write(tmp_path, monkeypatch, {"comirec-sa": sa, "gemirec": g}, name)
    out = "\n".join(verdicts.verdict_lines(names, ["comirec-sa"], ["comirec-sa", "gemirec"], set()))
    assert "beats ComiRec-SA's on 4 of 6 campaign datasets" in out and "**does not hold**" in out


def test_campaign_time_to_quality_pairs_each_seed_with_comirec_sa(tmp_path, monkeypatch):
    sa = {"seeds": [0, 1], "train_seconds": [100.0, 100.0],
          "curves": [[[10, 0.2, True], [20, 0.3, True]], [[10, 0.25, True]]]}
    g = {"seeds": [0, 1], "curves": [[[5, 0.35, False], [30, 0.31, True]], [[40, 0.2, True]]]}
    med, reached, n = verdicts.campaign_quality({"comirec-sa": sa, "gemirec": g})
    # seed 0: the warm-up epoch does not count, 30 s / 100 s; seed 1 never reaches 0.25: inf
    assert (reached, n) == (1, 2) and med == float("inf")
    g["curves"][1] = [[50, 0.26, True]]
    assert verdicts.campaign_quality({"comirec-sa": sa, "gemirec": g}) == (0.4, 2, 2)


def test_options_count_gemirecs_lr_runs_times_its_inference_settings(tmp_path, monkeypatch):
    entry = {"variants": [[0.001, 4], [0.002, 4]], "post_training_options": 24, "lr": 0.002}
    sa = {"variants": [[0.001, 1], [0.001, 4]], "post_training_options": 1, "lr": 0.001}
    _write(tmp_path, monkeypatch, {"gemirec": entry, "comirec-sa": sa})
    row = next(r for r in verdicts.options_lines(["ml-100k"], ["comirec-sa", "gemirec"]) if r.startswith("| ml"))
    assert row == "| ml-100k | 1 (lr 1e-3; cached: 1e-3/K1, 1e-3/K4) | 48 (lr 2e-3; cached: 1e-3, 2e-3) |"


def test_summary_std_is_the_sample_std_over_seeds():
    entry = {"test": {"recall@50": [0.10, 0.12, 0.14]}}
    assert summary._cell(entry) == f"12.00 ± {np.std([10, 12, 14], ddof=1):.2f} (3)" == "12.00 ± 2.00 (3)"


def test_the_moonshot_needs_the_point_at_1_10_and_the_lower_end_at_1_05(tmp_path, monkeypatch):
    base = list(np.random.default_rng(1).uniform(0.2, 0.4, 300))
    table = {"single": _paired_entry([base, base]), "gemirec": _paired_entry([[1.12 * x for x in base]] * 2)}
    _write(tmp_path, monkeypatch, table)
    out = "\n".join(verdicts.verdict_lines(["ml-100k"], ["single"], ["single", "gemirec"], set()))
    assert "reached on ml-100k." in out
    table["gemirec"] = _paired_entry([[1.08 * x for x in base]] * 2)
    _write(tmp_path, monkeypatch, table)
    assert "reached on no dataset." in "\n".join(verdicts.verdict_lines(["ml-100k"], ["single"],
                                                                         ["single", "gemirec"], set()))


def test_merged_list_diversity_lists_only_models_whose_runs_measured_it(tmp_path, monkeypatch):
    measured = {"seeds": [0, 1], "test": {"recall@50": [0.1, 0.1], "unique_ratio@50": [0.9, 0.7],
                                          "distinct_categories@50": [6.0, 8.0], "ild@50": [0.5, 0.7],
                                          "coverage@50": [None, 0.25]}}
    cached_before = {"seeds": [0], "test": {"recall@50": [0.1], "unique_ratio@50": [0.9]}}
    (tmp_path / "ml-100k.json").write_text(json.dumps({"gemirec": measured, "single": cached_before}))
    monkeypatch.setattr(summary, "RESULTS", tmp_path)
    rows = [r for r in summary._merged_diversity() if r.startswith("| ml-100k")]
    assert rows == ["| ml-100k | gemirec | 80.0 | 7.0 | 60.0 | 25.0 |"]
    (tmp_path / "ml-100k.json").write_text(json.dumps({"single": cached_before}))
    assert summary._merged_diversity() == []  # nothing measured yet: no section
