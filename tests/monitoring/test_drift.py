"""Drift verdicts on simulated traffic, insufficient data, interest health, the training-time reference."""

import numpy as np
import pandas as pd
import pytest

from monitoring.distributions import Tables, current_tables, load_tables, lookup_for
from monitoring.drift import (
    DRIFT,
    INSUFFICIENT,
    NO_DRIFT,
    DriftResult,
    chance_distance,
    check_drift,
    interest_health,
    snapshot_scores,
)


@pytest.fixture(scope="module")
def reference(reference_dir):
    return load_tables(reference_dir), lookup_for(reference_dir)


def test_no_shift_is_no_drift_on_5_seeds(checks):
    results = [result for result, _ in checks[0.0]]
    assert [r.verdict for r in results] == [NO_DRIFT] * 5, [r.to_markdown() for r in results]
    assert all(r.n_tested >= 4 for r in results)


def test_shifted_interests_are_drift_on_5_seeds(checks):
    results = [result for result, _ in checks[1.5]]
    assert [r.verdict for r in results] == [DRIFT] * 5, [r.to_markdown() for r in results]
    for r in results:
        drifted = {c.column for c in r.columns if c.drifted}
        assert {"interest_code", "top_code"} <= drifted
        assert r.drift_share >= r.threshold


def test_an_empty_window_is_insufficient_data(reference, tmp_path):
    ref, lookup = reference
    empty, _ = current_tables(tmp_path / "no-logs", lookup=lookup)
    result, snapshot = check_drift(ref, empty)
    assert result.verdict == INSUFFICIENT and snapshot is None and result.n_requests == 0
    assert "at least" in result.reason and result.health.codes_used == 0
    assert "insufficient data" in result.to_markdown()


def test_a_tiny_window_is_insufficient_data(reference, windows):
    ref, lookup = reference
    current, _ = current_tables(windows[1.5][0], lookup=lookup)
    keep = current.requests["request"] < 20  # 20 shifted responses: too few to call anything
    tiny = Tables(current.interests[current.interests["request"] < 20],
                  current.requests[keep], current.items[current.items["request"] < 20])
    result, snapshot = check_drift(ref, tiny)
    assert result.verdict == INSUFFICIENT and snapshot is None and result.n_requests == 20


def test_high_cardinality_codes_need_enough_rows():
    # 200 codes, 300 rows a side: two samples of one distribution would be ~0.3 apart by chance alone
    assert chance_distance(200, 300, 300, 0.01) > 0.3
    assert chance_distance(16, 100_000, 100_000, 0.01) < 0.01
    rng = np.random.default_rng(0)

    def tables(n):
        codes = pd.Categorical(rng.integers(0, 200, 4 * n).astype(str))
        interests = pd.DataFrame({"request": np.repeat(np.arange(n), 4), "slot": np.tile(np.arange(4), n),
                                  "interest_code": codes, "prob": np.full(4 * n, 0.25)})
        requests = pd.DataFrame({"request": np.arange(n), "history_len": rng.integers(5, 50, n),
                                 "top_code": codes[::4], "prob_entropy": np.full(n, np.log(4))})
        return Tables(interests, requests, pd.DataFrame({"request": np.arange(n)}))

    result, _ = check_drift(tables(150), tables(150))
    status = {c.column: c.status for c in result.columns}
    assert status["interest_code"] == "insufficient" and status["top_code"] == "insufficient"
    assert status["history_len"] == "insufficient" and status["item_code"] == "missing"
    assert status["interest_prob"] == "tested"  # constant on both sides: no chance distance at all
    assert result.verdict == NO_DRIFT and result.n_tested == 1


def test_interest_health():
    codes = ["1"] * 6 + ["2"] * 3 + ["3"]
    interests = pd.DataFrame({"request": np.arange(10), "slot": 0, "interest_code": pd.Categorical(codes),
                              "prob": 1.0})
    items = pd.DataFrame({"request": np.arange(4), "via_code": pd.Categorical(["1", "1", "2", "u"])})
    health = interest_health(Tables(interests, pd.DataFrame({"request": np.arange(10)}), items),
                             known={"1", "2", "3", "4", "5"}, top_n=1)
    p = np.array([0.6, 0.3, 0.1])
    assert health.code_entropy == pytest.approx(-(p * np.log2(p)).sum())
    assert health.code_evenness == pytest.approx(health.code_entropy / np.log2(5))
    assert health.dead_codes == ["4", "5"] and health.codes_used == 3
    assert health.top_share == pytest.approx(0.6)
    assert health.traffic_share == {"1": 0.5, "2": 0.25, "u": 0.25}


def test_result_round_trip_and_markdown(checks):
    result, snapshot = checks[1.5][1]
    again = DriftResult.from_dict(result.to_dict())
    assert again == result
    markdown = result.to_markdown({"window": "test"})
    assert "| interest_code | jensenshannon |" in markdown and "- window: test" in markdown
    metrics = snapshot.dict()["metrics"]
    assert {m["config"]["type"].split(":")[-1] for m in metrics} == {"ValueDrift", "MeanValue",
                                                                     "UniqueValueCount"}
    # the verdict's scores are the ones Evidently's ValueDrift records, and the drift share is in the snapshot
    tested = {c.column: c.score for c in result.columns if c.status == "tested"}
    assert snapshot_scores(snapshot) == pytest.approx(tested, abs=1e-12)
    share = [m["value"] for m in metrics if m["config"].get("column") == "health_drift_share"]
    assert share == [pytest.approx(result.drift_share)]
