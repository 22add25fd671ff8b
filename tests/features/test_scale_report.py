"""benchmarks.scale's reports from cached stage results: sums per log, the before/after ratio, the README
table (the stages themselves are measured by `python -m benchmarks.scale`, not here)."""

import json

from benchmarks import scale


def stage(name, seconds, gb, work, **facts):
    return {"stage": name, "seconds": seconds, "cpu_s": seconds, "peak_rss_gb": gb, "returncode": 0,
            "facts": {"work_s": work, **facts}}


def write(root, folder, rows):
    results = root / folder / "results"
    results.mkdir(parents=True)
    for row in rows:
        (results / f"{row['stage']}.json").write_text(json.dumps(row))


def test_summary_sums_the_feature_stage_and_compares_before_and_after(tmp_path, monkeypatch):
    monkeypatch.setattr(scale, "WORK", tmp_path)
    features = [stage("sources", 10, 0.5, 8), stage("apply", 5, 0.4, 1), stage("materialize", 20, 0.6, 15),
                stage("training_set", 5, 0.7, 4)]
    write(tmp_path, "sim-1M", [stage("ingest", 8, 0.5, 6, n_valid=1_000_000), *features,
                               stage("train_epoch", 100, 2.0, 90), stage("index", 2, 0.4, 1),
                               stage("evaluate", 3, 0.5, 2), stage("register", 4, 0.4, 1)])
    write(tmp_path, "sim-1M-before", [stage("sources", 60, 2.4, 58), stage("apply", 5, 0.4, 1),
                                      stage("materialize", 150, 2.1, 140), stage("training_set", 45, 2.8, 40)])
    summary = scale.summarise()
    logs = summary["logs"]
    assert logs["sim-1M"]["feature_stage_s"] == 40 and logs["sim-1M"]["feature_work_s"] == 28
    assert logs["sim-1M"]["flow_s"] == 40 + 8 + 109 and logs["sim-1M"]["flow_peak_gb"] == 2.0
    assert logs["sim-1M before"]["events"] == 1_000_000  # the old path's rows take the log's count
    assert summary["before_after"]["time_ratio"] == 6.5 and summary["before_after"]["memory_ratio"] == 4.0
    (tmp_path / "scale.json").write_text(json.dumps(summary))
    table = scale.readme_table(tmp_path / "scale.json")
    assert "| sim-1M | 1,000,000 | 2.6 min | 2.0 GB | 40 s | one epoch |" in table, table
    assert "before" not in table  # the README shows the flow as it runs now
    assert "sim-1M before" in scale.markdown(summary)
