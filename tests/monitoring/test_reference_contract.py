"""Contracts with the other packages: the training-time reference (monitoring/reference.py), logs of a real
model, and the service's own response log (serving/runtime.py) all read as the same tables."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from model.config import load_config
from model.persistence.saved import load_model
from model.training.pipeline import train_model
from monitoring.distributions import current_tables, load_tables, lookup_for, tables_from_window
from monitoring.drift import check_drift
from monitoring.logs import LogWriter, read_window
from monitoring.reference import validation_histories, write_reference
from monitoring.scenario import attribution, log_recommendations
from tests.model.conftest import make_events


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A real tiny GemiRec (one epoch on a few synthetic users), its reference, and 120 logged responses."""
    tmp = tmp_path_factory.mktemp("served")
    events, items = make_events(n_users=60, n_items=40)
    cfg = load_config("tiny", ["model=gemirec", "train.max_epochs=1", "train.n_negatives=16",
                               "train.threads=1"])
    folder = train_model(events, items, cfg, tmp, progress=False).folder
    loaded = load_model(folder)
    reference = write_reference(loaded, validation_histories(events, items, cfg.data), folder, n=10)
    histories = [events["item_id"].to_numpy()[i:i + 12].tolist() for i in range(0, 1200, 10)]
    stamps = [datetime(2025, 1, 1, tzinfo=UTC) + timedelta(seconds=i) for i in range(len(histories))]
    with LogWriter(tmp / "logs") as writer:
        log_recommendations(loaded, histories, writer, stamps, n=10, corrupt_at=frozenset({3}))
    return reference, tmp / "logs"


def test_training_reference_and_logs_share_columns(served):
    reference, logs = served
    ref, lookup = load_tables(reference), lookup_for(reference)
    current, summary = current_tables(logs, lookup=lookup)
    assert summary["n_corrupt"] == 1 and current.n_requests == 120
    for name in ("interests", "requests"):
        assert set(getattr(ref, name).columns) <= set(getattr(current, name).columns)
    assert {"popularity_bucket", "item_code"} <= set(ref.items.columns) & set(current.items.columns)
    assert "unknown" not in set(current.items["item_code"].astype(str))  # every served item has a code
    for tables in (ref, current):
        assert all(c.replace("-", "").isdigit() for c in tables.interests["interest_code"].astype(str))
    result, _ = check_drift(ref, current)  # tiny on purpose: a verdict, not an error
    assert result.verdict == "insufficient data"


def test_attribution():
    ranked = np.array([[5, 7, 9, 11]])
    per_interest = np.array([[[7, 1], [9, 5]]])  # (U, K, N)
    assert attribution(ranked, per_interest).tolist() == [[1, 0, 1, -1]]
    assert attribution(ranked, None).tolist() == [[-1, -1, -1, -1]]


def test_the_services_response_log_reads_clean(tmp_path):
    from serving.runtime import ResponseLog

    service_log = ResponseLog(tmp_path, file_mb=0.001)  # rotates every few lines
    for i in range(20):  # the fields serving/engine.py writes; a cold start has no interests
        cold = i % 5 == 0
        service_log.write({"ts": datetime.now(UTC).isoformat(), "request_id": f"r{i}", "user_id": None if cold
                           else i, "history_len": 0 if cold else 12, "model_version": "gemirec-test:abc",
                           "interest_codes": [] if cold else [[3, 1], [0, 2]],
                           "interest_probs": [] if cold else [0.6, 0.4], "items": [5, 6, 7],
                           "item_interest": [-1, -1, -1] if cold else [0, 1, -1], "latency_ms": 4.2})
    service_log.close()
    window = read_window(tmp_path)
    assert len(list(tmp_path.glob("responses-*.jsonl"))) > 1
    assert window.n_requests == 20 and window.n_corrupt == 0
    tables = tables_from_window(window)
    assert set(tables.items["via_code"].astype(str)) == {"3-1", "0-2", "u"}
