"""Faults of the running stack, on real parts: a Prefect server on SQLite and the process serving our
deployments (`gemirec up`, in a temporary root, on a free port), the train-gemirec flow on simulator-tiny.

One module-scoped sequence: a deployment run whose flow-run process is SIGKILLed after its first training
checkpoint is retried with `prefect flow-run retry` and resumes from that checkpoint; then the server is
restarted and nothing registered or recorded is lost. (A store entry deleted under the running service:
tests/serving/test_service.py.)
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
from prefect.deployments import run_deployment
from prefect.settings import PREFECT_API_URL, temporary_settings

from flows import server
from local_stack import processes
from serving import registry
from serving.launch import free_port

pytestmark = pytest.mark.slow
NAME = "gemirec-faults"


def wait(what: str, check, timeout: float, every: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"{what}: not after {timeout:.0f}s")


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:  # the parent pid
            found.append(int(stat.parent.name))
    return found


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def flow_run_process(lp: server.LocalPrefect) -> int:
    """The process running the flow: `python -m prefect.engine`, a child of the deployment process."""
    serve_pid = processes.running_pid(lp.pid_file("serve"), server.SERVE)
    engine = [p for p in children(serve_pid) if "prefect.engine" in cmdline(p)]
    assert len(engine) == 1, "one flow-run process under the deployment process"
    return engine[0]


def kill_and_retry(lp: server.LocalPrefect, client, run, ckpt: Path) -> dict:
    def state():
        return client.read_flow_run(run.id).state

    wait("first checkpoint", ckpt.exists, 240, every=0.2)
    os.kill(flow_run_process(lp), signal.SIGKILL)
    crashed = wait("the runner marks the run crashed", lambda: state().is_crashed() and state(), 60)
    epoch = torch.load(ckpt, weights_only=False)["state"]["epoch"]
    prefect = str(Path(sys.executable).with_name("prefect"))
    retry = subprocess.run([prefect, "flow-run", "retry", str(run.id)], env=lp.env(), capture_output=True,
                           text=True, timeout=120)
    assert retry.returncode == 0, retry.stdout + retry.stderr
    final = wait("the retried run finishes", lambda: state().is_final() and state(), 300, every=1)
    time.sleep(3)  # the last log batch follows the final state
    logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run.id])), limit=200)
    return {"crashed": crashed, "killed_at_epoch": epoch, "final": final, "logs": [x.message for x in logs]}


@pytest.fixture(scope="module")
def faults(tmp_path_factory):
    root = tmp_path_factory.mktemp("stack")
    lp = server.LocalPrefect(root=root, port=free_port())
    reg = registry.Registry(root / "bentoml", NAME)
    params = {"dataset": "simulator-tiny", "preset": "tiny", "registry_name": NAME,
              "bentoml_home": str(reg.root), "runs_dir": str(root / "runs"),
              "stores_dir": str(root / "stores"),
              # enough epochs that the kill lands mid-training; one thread on a shared 2-core machine
              "overrides": ["train.max_epochs=8", "train.patience=20", "train.threads=1"]}
    with pytest.MonkeyPatch.context() as env:
        env.setenv("PREFECT_RUNNER_POLL_FREQUENCY", "2")  # the deployment process looks for work every 2 s
        try:
            server.up(lp)
            with temporary_settings(updates={PREFECT_API_URL: lp.api_url}), get_client(sync_client=True) as c:
                run = run_deployment("train-gemirec/train-gemirec", parameters=params, timeout=0)
                run_dir = root / "runs" / f"{run.name}-{str(run.id)[:8]}"
                outcome = kill_and_retry(lp, c, run, run_dir / "checkpoint" / "checkpoint.pt")
            yield {"lp": lp, "reg": reg, "run": run, "run_dir": run_dir, **outcome}
        finally:
            server.down(lp)


def test_a_killed_training_run_resumes_from_its_checkpoint(faults):
    run, final = faults["run"], faults["final"]
    assert faults["crashed"].is_crashed() and final.is_completed(), final
    epoch = faults["killed_at_epoch"]
    assert 1 <= epoch < 8  # killed mid-training, after at least one finished epoch
    resumed = [m for m in faults["logs"] if m.startswith("resumed from")]
    assert resumed and resumed[-1].endswith(f"at epoch {epoch}"), faults["logs"]
    assert not (faults["run_dir"] / "checkpoint").exists()  # a finished run removes its checkpoint
    versions = registry.versions(faults["reg"])
    assert [v.metadata["flow_run"] for v in versions] == [str(run.id)]  # registered once, by the retry
    assert registry.production(faults["reg"]).tag == versions[0].tag


def test_restarting_the_prefect_server_loses_no_model_and_no_run(faults):
    lp, reg, run = faults["lp"], faults["reg"], faults["run"]
    pointer = reg.pointer.read_bytes()
    with temporary_settings(updates={PREFECT_API_URL: lp.api_url}), get_client(sync_client=True) as client:
        before = {r.id: r.state.type for r in client.read_flow_runs()}
        stopped = server.down(lp)
        assert len(stopped) == 2 and not server.healthy(lp)
        server.up(lp)
        after = {r.id: r.state.type for r in client.read_flow_runs()}
        assert client.read_deployment_by_name("train-gemirec/train-gemirec").name == "train-gemirec"
    assert after == before and after[run.id].value == "COMPLETED"  # the history lives in .prefect/ SQLite
    assert reg.pointer.read_bytes() == pointer
    assert registry.production(reg).metadata["flow_run"] == str(run.id)
    assert (lp.home / "prefect.db").exists()
