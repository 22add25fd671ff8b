"""The `gemirec` command line, run in-process on the tiny simulator."""

import json

import pytest
from typer.testing import CliRunner

from flows.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """`gemirec train` of GemiRec on simulator-tiny, 2 epochs (a few seconds); its output folder."""
    out = tmp_path_factory.mktemp("cli") / "run"
    result = runner.invoke(app, ["train", "--dataset", "simulator-tiny", "--preset", "tiny", "--model",
                                 "gemirec", "--set", "train.max_epochs=2", "--set", "train.threads=1",
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out, result.output


def test_train_explain_recommend_on_tiny_simulator(trained):
    out, output = trained
    assert "recall@50" in output and (out / "model" / "manifest.json").exists()
    result = runner.invoke(app, ["explain", str(out / "model")])
    assert result.exit_code == 0 and "top categories" in result.output
    result = runner.invoke(app, ["recommend", str(out / "model"), "--history", "1,2,3", "--n", "5"])
    assert result.exit_code == 0 and "items:" in result.output and "interest" in result.output


def test_evaluate_reproduces_the_test_metrics_of_training(trained):
    out, _ = trained
    result = runner.invoke(app, ["evaluate", str(out / "model"), "--dataset", "simulator-tiny"])
    assert result.exit_code == 0, result.output
    recorded = json.loads((out / "model" / "manifest.json").read_text())["metrics"]["test"]
    # the same data, split by the same seed: the held-out test users training reported on
    assert f"{100 * recorded['recall@50']:.2f}" in result.output and "test users" in result.output
    assert "not the data" not in result.output and "unknown" not in result.output


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


def test_evaluate_serve_monitor_demo_argument_errors(tmp_path, trained, monkeypatch):
    monkeypatch.setenv("BENTOML_HOME", str(tmp_path / "bentoml"))  # an empty registry
    model = str(trained[0] / "model")
    result = runner.invoke(app, ["evaluate", str(tmp_path)])
    assert result.exit_code == 2 and "manifest.json" in result.output
    result = runner.invoke(app, ["evaluate", model, "--split", "train"])
    assert result.exit_code == 2 and "--split" in result.output
    result = runner.invoke(app, ["evaluate", model, "--dataset", "no-such-dataset"])
    assert result.exit_code == 2 and "no-such-dataset" in result.output
    result = runner.invoke(app, ["serve"])
    assert result.exit_code == 2 and "no promoted model" in result.output and "make demo" in result.output
    result = runner.invoke(app, ["serve", "--folder", str(tmp_path)])
    assert result.exit_code == 2 and "manifest.json" in result.output
    result = runner.invoke(app, ["monitor", "--logs", str(tmp_path / "logs")])
    assert result.exit_code == 2 and "no response logs" in result.output
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "responses-1.jsonl").write_text("{}\n")
    result = runner.invoke(app, ["monitor", "--logs", str(tmp_path / "logs")])
    assert result.exit_code == 2 and "no promoted model" in result.output
    logs = str(tmp_path / "logs")
    result = runner.invoke(app, ["monitor", "--logs", logs, "--reference", str(tmp_path / "x")])
    assert result.exit_code == 2 and "not found" in result.output
    result = runner.invoke(app, ["demo", "--traffic", "0"])
    assert result.exit_code == 2
