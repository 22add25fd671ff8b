import json

from benchmarks import train_time


def test_back_to_back_training_time_is_recorded(tmp_path, capsys):
    train_time.main(["--dataset", "simulator-tiny", "--threads", "1", "--out", str(tmp_path)])
    rows = json.loads((tmp_path / "train_time.json").read_text())
    assert len(rows) == 1
    row = rows[0]
    for model in ("comirec-sa", "gemirec"):
        assert row[model]["wall_s"] > 0 and row[model]["epochs"] >= 1
        assert 0 <= row[model]["val_recall@50"] <= 1
    ratio = row["gemirec"]["wall_s"] / row["comirec-sa"]["wall_s"]
    assert f"| {ratio:.2f} |" in (tmp_path / "train_time.md").read_text()  # the total ratio, beside time to quality
    assert "GemiRec / ComiRec-SA wall time" in capsys.readouterr().out


def test_an_ab_run_of_a_gemirec_setting_is_listed_beside_the_preset(tmp_path, monkeypatch):
    args = ["--dataset", "simulator-tiny", "--threads", "1", "--out", str(tmp_path)]
    train_time.main(args)
    train_time.main(args + ["--set", "gemirec.tf_positions=8"])
    rows = json.loads((tmp_path / "train_time.json").read_text())
    assert [r.get("gemirec_set") for r in rows] == [None, ["gemirec.tf_positions=8"]]
    latest = (tmp_path / "train_time.md").read_text().split("## Latest run per dataset")[1]
    assert "| simulator-tiny (GemiRec gemirec.tf_positions=8) | 0 |" in latest
    assert "| simulator-tiny | 0 |" in latest  # the preset's run stays among the latest
    assert "Earlier runs" not in latest
    # the summary's back-to-back column reads the preset's run, never an A/B one
    from benchmarks import summary

    monkeypatch.setattr(summary, "RESULTS", tmp_path)
    preset_run = rows[0]
    want = f"{preset_run['gemirec']['wall_s'] / preset_run['comirec-sa']['wall_s']:.2f}"
    assert summary._back_to_back() == {"simulator-tiny": want}


def test_time_to_quality_reads_the_first_keepable_epoch_that_reaches_the_target():
    history = [[1.0, 0.30, False], [2.0, 0.20, True], [3.0, 0.25, True], [4.0, 0.40, True]]
    # the warm-up epoch at 0.30 cannot be the kept model, so the first counted one is at 4 s
    assert train_time.time_to_quality(history, 0.25 + 1e-9) == 4.0
    assert train_time.time_to_quality(history, 0.25) == 3.0
    assert train_time.time_to_quality([[1.0, 0.1], [2.0, 0.2]], 0.2) == 2.0  # two fields: all keepable
    assert train_time.time_to_quality(history, 0.5) is None


def test_time_to_quality_is_against_comirec_sa_best_and_whole_wall_time():
    row = {"comirec-sa": {"wall_s": 10.0, "history": [[2.0, 0.2, True], [4.0, 0.3, True], [6.0, 0.25, True]]},
           "gemirec": {"wall_s": 30.0, "history": [[3.0, 0.29, True], [5.0, 0.31, True]]}}
    assert train_time.quality_ratio(row) == (5.0, 0.5)
    row["gemirec"]["history"] = [[3.0, 0.29, True]]
    assert train_time.quality_ratio(row) == (None, float("inf"))
    del row["gemirec"]["history"]  # a row recorded before histories were kept
    assert train_time.quality_ratio(row) == (None, None)


def test_rows_record_per_epoch_histories_and_the_table_lists_pending_datasets(tmp_path):
    train_time.main(["--dataset", "simulator-tiny", "--threads", "1", "--out", str(tmp_path)])
    row = json.loads((tmp_path / "train_time.json").read_text())[0]
    for model in ("comirec-sa", "gemirec"):
        hist = row[model]["history"]
        assert len(hist) == row[model]["epochs"]
        assert all(a[0] < b[0] for a, b in zip(hist, hist[1:]))  # cumulative seconds
    assert max(h[1] for h in row["comirec-sa"]["history"]) == row["comirec-sa"]["val_recall@50"]
    md = (tmp_path / "train_time.md").read_text()
    assert "time to quality ÷ SA wall (≤ 1.0)" in md
    assert "--dataset ml-100k --threads 1" in md  # a campaign dataset with no run yet is listed as pending
