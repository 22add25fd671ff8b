"""The `gemirec` command line, run in-process on the tiny simulator."""

from typer.testing import CliRunner

from flows.cli import app

runner = CliRunner()


def test_train_explain_recommend_on_tiny_simulator(tmp_path):
    out = tmp_path / "run"
    result = runner.invoke(
        app,
        [
            "train",
            "--dataset",
            "simulator-tiny",
            "--preset",
            "tiny",
            "--model",
            "gemirec",
            "--set",
            "train.max_epochs=2",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "recall@50" in result.output and (out / "model" / "manifest.json").exists()
    result = runner.invoke(app, ["explain", str(out / "model")])
    assert result.exit_code == 0 and "top categories" in result.output
    result = runner.invoke(app, ["recommend", str(out / "model"), "--history", "1,2,3", "--n", "5"])
    assert result.exit_code == 0 and "items:" in result.output and "interest" in result.output


def test_clear_errors_for_bad_input(tmp_path):
    result = runner.invoke(app, ["train", "--events", str(tmp_path / "missing.csv"), "--out", str(tmp_path)])
    assert result.exit_code == 2 and "missing.csv" in result.output
    result = runner.invoke(app, ["train", "--dataset", "no-such-dataset", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "no-such-dataset" in result.output
    result = runner.invoke(
        app, ["train", "--dataset", "simulator-tiny", "--preset", "nope", "--out", str(tmp_path)]
    )
    assert result.exit_code == 2 and "preset" in result.output
    result = runner.invoke(app, ["explain", str(tmp_path)])
    assert result.exit_code == 2
