"""The train-gemirec flow end to end on simulator-tiny, under a real (temporary) Prefect server.

One module-scoped sequence keeps the suite short: a first run that promotes, a genuinely worse second
run (one epoch, from a file with malformed rows) that is registered but held, and a missing file that
fails the flow before anything is registered.
"""

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
from prefect.states import Failed
from prefect.testing.utilities import prefect_test_harness

from features.datasets import load_dataset
from features.events import IngestError
from flows.train_flow import _io_error, _not_bad_input, source_slug, train_gemirec
from serving import registry

MALFORMED = "12,abc,1700000000\n-5,3,1700000000\n7,8,not-a-time\n"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("flow")
    events = load_dataset("simulator-tiny").events
    csv = tmp / "tiny_events.csv"
    table = events.assign(timestamp=events["event_timestamp"].astype("int64") // 10**9)
    csv.write_text(table[["user_id", "item_id", "timestamp"]].to_csv(index=False) + MALFORMED)
    common = {"preset": "tiny", "runs_dir": str(tmp / "runs"), "stores_dir": str(tmp / "stores"),
              "bentoml_home": str(tmp / "bentoml"), "registry_name": "gemirec-test"}
    reg = registry.Registry(tmp / "bentoml", "gemirec-test")
    with prefect_test_harness(server_startup_timeout=120):
        first = train_gemirec(dataset="simulator-tiny", overrides=["train.max_epochs=2", "train.threads=1"],
                              **common)
        state = train_gemirec(events=str(csv), overrides=["train.max_epochs=1", "train.threads=1"],
                              return_state=True, **common)
        second = state.result()
        with get_client(sync_client=True) as client:
            artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id])))
        before = [v.tag for v in registry.versions(reg)]
        with pytest.raises(IngestError, match="file not found"):
            train_gemirec(events=str(tmp / "missing.csv"), **common)
        after = [v.tag for v in registry.versions(reg)]
    return {"first": first, "second": second, "artifacts": artifacts, "reg": reg, "before": before,
            "after": after}


def test_first_run_registers_and_promotes(runs):
    first, reg = runs["first"], runs["reg"]
    assert first["promoted"] and first["production"] == first["tag"]
    version = registry.get(reg, first["tag"])
    assert version.metadata["metrics"]["val"]["recall@50"] == pytest.approx(first["val_recall@50"])
    assert version.metadata["data_hash"] and version.metadata["config"]["model"] == "gemirec"
    assert version.labels["gate"] == "promoted"
    assert (version.path / "reference" / "items.parquet").exists()


def test_a_worse_model_is_registered_but_not_promoted(runs):
    first, second, reg = runs["first"], runs["second"], runs["reg"]
    assert second["val_recall@50"] < first["val_recall@50"] - 0.005
    assert not second["promoted"]
    assert [v.tag for v in registry.versions(reg)] == [first["tag"], second["tag"]]  # the first is kept
    assert registry.production(reg).tag == first["tag"]
    assert registry.get(reg, second["tag"]).labels["gate"] == "held"


def test_malformed_rows_are_counted_in_the_artifact(runs):
    assert runs["second"]["n_malformed"] == 3
    markdown = next(a for a in runs["artifacts"] if a.key == "train-gemirec-metrics").data
    assert "3 malformed rows skipped" in markdown and "NOT promoted" in markdown
    curves = [a for a in runs["artifacts"] if a.key == "train-gemirec-curve"]
    assert curves and curves[0].data.startswith("data:image/png")


def test_a_missing_file_fails_the_flow_and_registers_nothing(runs):
    assert runs["after"] == runs["before"] and len(runs["after"]) == 2


def test_io_tasks_retry_only_io_errors_and_training_skips_bad_input():
    assert _io_error(None, None, Failed(data=OSError("disk hiccup")))
    assert not _io_error(None, None, Failed(data=FileNotFoundError("gone")))
    assert not _io_error(None, None, Failed(data=IngestError("missing.csv: file not found")))
    assert _not_bad_input(None, None, Failed(data=RuntimeError("killed")))
    assert not _not_bad_input(None, None, Failed(data=ValueError("too little data")))


def test_source_slug():
    assert source_slug("simulator", None) == "simulator"
    assert source_slug("simulator", "/data/My Events.csv") == "my-events"
