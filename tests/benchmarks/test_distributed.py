"""benchmarks/distributed.py: the verdict that judges 2 processes against the spread of 1-process seeds."""

from benchmarks.distributed import markdown, verdict


def rows(one: list[float], two: list[float]) -> list[dict]:
    base = {"seconds": 10.0, "cpu_s": 19.0, "peak_rss_gb": 1.0, "epochs": 4, "test_recall@50": 0.2,
            "final_train_loss": 5.0}
    one_rows = [{**base, "processes": 1, "seed": s, "val_recall@50": v, "train_wall_s": 100.0}
                for s, v in enumerate(one)]
    return one_rows + [{**base, "processes": 2, "seed": s, "val_recall@50": v, "train_wall_s": 80.0}
                       for s, v in enumerate(two)]


def test_within_one_std_passes_and_outside_fails():
    close = verdict(rows([0.30, 0.32, 0.31], [0.305]))  # std 0.01, gap -0.005
    assert close["within_one_std"] and abs(close["gap_in_stds"] + 0.5) < 1e-9
    assert close["speedup_2_over_1"] == 1.25
    far = verdict(rows([0.30, 0.32, 0.31], [0.285]))  # gap -0.025 = -2.5 std
    assert not far["within_one_std"]


def test_needs_two_one_process_seeds_and_a_two_process_run():
    assert verdict(rows([0.3], [0.3])) == {}
    assert verdict(rows([0.3, 0.31], [])) == {}


def test_report_states_the_verdict():
    report = {"command": "python -m benchmarks.distributed", "commit": "abc", "machine": "cpu", "folder": "f",
              "events": 1000, "epochs": 4, "warmup": 2, "rows": rows([0.30, 0.32, 0.31], [0.285])}
    report["verdict"] = verdict(report["rows"])
    text = markdown(report)
    assert "Within one seed's std: **no**" in text and "| 2 | 0 | 28.50 |" in text
