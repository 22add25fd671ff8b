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
    assert f"**{ratio:.2f}**" in (tmp_path / "train_time.md").read_text()
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
