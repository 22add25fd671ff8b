"""The benchmark-gemirec flow on a 2-worker Dask LocalCluster under a temporary Prefect server.

Both flow runs use one cluster the test starts (as `Cluster.task_runner` would, on 127.0.0.1), reached
by address like a remote one: starting worker processes, not the tiny runs, is most of the time.
"""

import json

from distributed import LocalCluster
from prefect.testing.utilities import prefect_test_harness

from flows.benchmark_flow import Cluster, run_benchmarks

PARAMETERS = {"datasets": ["simulator-tiny"], "models": ["mostpop", "single"], "seeds": 2, "preset": "tiny",
              "overrides": ["train.max_epochs=1"]}


def test_fan_out_caches_and_tabulates(tmp_path):
    cache, results = tmp_path / "cache", tmp_path / "results"
    where = {"cache_dir": str(cache), "results_dir": str(results)}
    with (prefect_test_harness(server_startup_timeout=120),
          LocalCluster(**Cluster(workers=2).local_cluster_kwargs()) as dask):
        cluster = Cluster(address=dask.scheduler_address)
        first = run_benchmarks(cluster, **PARAMETERS, **where)
        written = {p: p.stat().st_mtime_ns for p in (cache / "simulator-tiny").glob("*.json")}
        again = run_benchmarks(cluster, **PARAMETERS, **where)

    runs = first["simulator-tiny"]["runs"]
    assert sorted((r["label"], r["seed"]) for r in runs) == [("mostpop", 0), ("mostpop", 1), ("single", 0),
                                                            ("single", 1)]
    assert first["simulator-tiny"]["cached"] == 0
    assert len(written) == 4 and {str(p) for p in written} == {r["path"] for r in runs}
    for r in runs:
        record = json.loads(open(r["path"]).read())
        assert (record["label"], record["seed"], record["config"]["train"]["max_epochs"]) == (
            r["label"], r["seed"], 1)
    table = results / "simulator-tiny.md"
    assert first["simulator-tiny"]["table"] == str(table)
    text = table.read_text()
    assert "| mostpop |" in text and "| single |" in text
    assert set(json.loads((results / "simulator-tiny.json").read_text())) == {"mostpop", "single"}

    assert again["simulator-tiny"]["cached"] == 4  # the rerun trained nothing
    assert {p: p.stat().st_mtime_ns for p in (cache / "simulator-tiny").glob("*.json")} == written
