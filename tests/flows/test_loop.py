"""The closed loop on real parts, all on 127.0.0.1 in a temporary root: a Prefect server and the process
serving our deployments, `bentoml serve` reading histories from the Feast store its version's train run
filled, the monitor-gemirec and train-gemirec flows, Evidently. A small simulator world (3,000 users with
short histories, so the monitor's reference has its 300 validation users) and the tiny preset keep each
training to seconds.

One module-scoped run of `flows.loop.Loop`: a first training, user-id requests, new users' events pushed
online, their drifted requests, the monitor's trigger, the retrain on the log plus the pushed events, the
gate and the swap, with a steady client counting every answer.
"""

import io

import httpx
import pytest
from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_API_URL, temporary_settings
from rich.console import Console

from features.fresh_users import write_world
from features.simulator import SimulatorConfig
from flows import stack
from flows.loop import Loop, LoopConfig
from serving import registry
from serving.launch import free_port

pytestmark = pytest.mark.slow
NAME = "gemirec-loop"
WORLD = SimulatorConfig(n_users=3000, n_items=600, n_topics=8, mean_length=12.0, min_length=6)


@pytest.fixture(scope="module")
def loop(tmp_path_factory):
    root = tmp_path_factory.mktemp("loop")
    st = stack.Stack(root=root, prefect_port=free_port(), service_port=free_port(), ui_port=free_port(),
                     registry_name=NAME)
    train = {"events": str(write_world(WORLD, root / "world.parquet")), "preset": "tiny",
             "overrides": ["train.max_epochs=5", "train.threads=1"], "registry_name": NAME,
             "tolerance": 1.0}  # the retrain is promoted, so that the swap happens
    output = io.StringIO()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("BENTOML_HOME", str(root / "bentoml"))  # inherited by the deployments and the service
        env.setenv("PREFECT_RUNNER_POLL_FREQUENCY", "2")
        env.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
        try:
            cfg = LoopConfig(stack=st, train=train, world=WORLD, new_users=1000, reload_s=1.0,
                             client_interval_s=0.02, run_timeout_s=240, evidently_ui=False)
            result = Loop(cfg, Console(file=output, width=200)).run()
            url = st.service_url
            known = httpx.post(f"{url}/recommend", json={"user_id": 5, "n": 10}, timeout=30).json()
            stranger = httpx.post(f"{url}/recommend", json={"user_id": 10**9, "n": 10}, timeout=30).json()
            with temporary_settings(updates={PREFECT_API_URL: st.prefect.api_url}), \
                    get_client(sync_client=True) as client:
                train_run = client.read_flow_run(result["train_id"])
                parent = client.read_task_run(train_run.parent_task_run_id)
            versions = registry.versions(st.registry)
            yield {"result": result, "known": known, "stranger": stranger, "train_run": train_run,
                   "parent": parent, "versions": versions, "output": output.getvalue()}
        finally:
            print(output.getvalue())  # the loop's narration, shown when a test fails
            stack.down(st)


def test_a_known_user_is_served_from_the_store_and_a_stranger_gets_cold_start(loop):
    known, stranger = loop["known"], loop["stranger"]
    assert not known["cold_start"] and known["history_len"] > 0 and len(known["items"]) == 10
    assert known["interests"], known
    assert stranger["cold_start"] and stranger["history_len"] == 0 and len(stranger["items"]) == 10


def test_a_pushed_event_reaches_the_next_recommendation(loop):
    push = loop["result"]["push"]
    assert push["cold_before"] and not push["cold_after"]
    assert push["latency_s"] < 5.0, push


def test_the_monitor_starts_a_linked_retrain_on_the_pushed_events(loop):
    result, train_run = loop["result"], loop["train_run"]
    assert str(loop["parent"].flow_run_id) == result["monitor_id"]  # a child of the monitor run in the UI
    assert "triggered-by-monitor-gemirec" in train_run.tags
    retrained = next(v for v in loop["versions"] if v.tag == result["tag"])
    assert retrained.metadata["n_pushed"] == result["push"]["events"]
    assert retrained.metadata["feature_store"] == next(
        v for v in loop["versions"] if v.tag == result["base"]).metadata["feature_store"]


def test_the_drifted_window_and_the_one_after_the_retrain_are_both_monitored(loop):
    result = loop["result"]
    assert result["drift_share"] >= 0.3 and result["columns"]["interest_code"] > 0.05, result
    recovery = result["recovery"]
    assert recovery["verdict"] in ("drift", "no drift") and recovery["drift_share"] is not None, recovery


def test_the_gate_says_why_and_the_service_swaps_without_a_failed_request(loop):
    result = loop["result"]
    assert result["promoted"] and "≥" in result["reason"], result
    swap, client = result["swap"], result["client"]
    assert swap["swapped"] and swap["around"]["requests"] > 0, swap
    assert client["failed"] == 0 and swap["around"]["failed"] == 0, client
    assert set(client["versions"]) == {result["base"], result["tag"]}
    assert loop["known"]["model_version"] == result["tag"]
