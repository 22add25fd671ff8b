"""The monitor-gemirec flow under a temporary Prefect server: verdicts, snapshots, artifact, trigger path."""

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey, LogFilter, LogFilterFlowRunId
from prefect.testing.utilities import prefect_test_harness

from flows.monitor_flow import deployment, monitor_gemirec
from monitoring.workspace import WorkspaceConfig, list_snapshots

pytestmark = pytest.mark.slow  # a temporary Prefect server: most of this module's time is its start
UNTIL = "2025-01-02T00:00:00+00:00"  # the simulated traffic is stamped 2025-01-01


@pytest.fixture(scope="module")
def runs(reference_dir, windows, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("monitor")
    common = {"reference": str(reference_dir), "workspace": str(tmp / "ws"), "runs_dir": str(tmp / "runs"),
              "until": UNTIL, "window_hours": 48.0, "train_deployment": "train-gemirec/not-deployed-here"}
    with pytest.MonkeyPatch.context() as env:
        env.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "false")  # the temporary server sends no telemetry
        with prefect_test_harness(server_startup_timeout=180):
            calm = monitor_gemirec(logs=str(windows[0.0][0]), **common)
            state = monitor_gemirec(logs=str(windows[1.5][0]), trigger=True, return_state=True, **common)
            drifted = state.result()
            empty = monitor_gemirec(logs=str(tmp / "no-logs"), **common)
            deployment_id = fake_training.to_deployment(name="test").apply()
            retrain = monitor_gemirec(logs=str(windows[1.5][1]), **{**common, "workspace": str(tmp / "ws2"),
                                                                   "train_deployment": "train-gemirec/test",
                                                                   "train_parameters": {"preset": "tiny"}})
            with get_client(sync_client=True) as client:
                logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(
                    any_=[state.state_details.flow_run_id])))
                artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(
                    key=ArtifactFilterKey(any_=["monitor-gemirec-drift"])))
                started = client.read_flow_run(retrain["triggered"])
    return {"calm": calm, "drifted": drifted, "empty": empty, "logs": logs, "artifacts": artifacts,
            "ws": WorkspaceConfig(path=tmp / "ws"), "started": started, "deployment_id": deployment_id}


@flow(name="train-gemirec")
def fake_training(preset: str = "long") -> str:
    return preset


def test_verdicts_and_snapshots(runs):
    assert runs["calm"]["verdict"] == "no drift" and runs["calm"]["n_requests"] == 1000
    assert runs["drifted"]["verdict"] == "drift" and runs["drifted"]["drift_share"] >= 0.3
    assert runs["empty"]["verdict"] == "insufficient data" and runs["empty"]["snapshot"] is None
    assert len(list_snapshots(runs["ws"])) == 2  # one per run that had data to compare


def test_missing_train_deployment_is_a_warning_not_a_failure(runs):
    assert runs["drifted"]["triggered"] is None
    messages = [log.message for log in runs["logs"]]
    assert any("does not exist; no retraining started" in m for m in messages), messages


def test_drift_starts_the_train_deployment_without_waiting(runs):
    started = runs["started"]  # scheduled, not run: there is no worker here, and the monitor did not wait
    assert started.deployment_id == runs["deployment_id"] and started.parameters == {"preset": "tiny"}
    assert "triggered-by-monitor-gemirec" in started.tags


def test_markdown_artifact(runs):
    markdown = [a.data for a in runs["artifacts"]]
    assert len(markdown) == 4
    assert any("**drift**" in m and "| interest_code |" in m for m in markdown)


def test_deployment_is_schedulable():
    cron = deployment(cron="*/30 * * * *", logs="runs/serving/logs")
    assert cron.name == "monitor-gemirec" and cron.schedules[0].schedule.cron == "*/30 * * * *"
    assert cron.parameters == {"logs": "runs/serving/logs"}
    every = deployment(interval_minutes=15)
    assert every.schedules[0].schedule.interval.total_seconds() == 900
