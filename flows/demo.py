"""`gemirec demo` (what `make demo` runs): the whole stack on this machine, end to end, then left running.

    Prefect server + deployments (`gemirec up`) → a `train-gemirec` deployment run on the embedded simulator
    with a training budget, its log followed here → the gated, registered model → `bentoml serve` of the
    production model → a sample /recommend for a fresh history, then one for a user by id (history from the
    Feast store the version's train run filled) → simulated traffic from fresh users → a `monitor-gemirec`
    deployment run → the Evidently UI

Everything binds 127.0.0.1 and keeps running afterwards (flows/stack.py); `gemirec down` stops it all. A
second demo reuses what already runs: the service picks up a newly promoted model by itself.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from uuid import UUID

import httpx
from rich.console import Console
from rich.table import Table

from flows import server, stack
from flows.monitor_flow import DEPLOYMENT as MONITOR
from flows.monitor_flow import TRAIN_DEPLOYMENT as TRAIN
from serving import registry

# Prefect's own bookkeeping lines, which say nothing the state changes do not
QUIET = ("Finished in state Completed()", "Downloading flow code", "Created task run", "Executing '")


class DemoError(RuntimeError):
    pass


@dataclass(frozen=True)
class DemoConfig:
    stack: stack.Stack = field(default_factory=stack.Stack)
    preset: str = "long"
    train_seconds: float = 120.0  # training budget (train.max_time_s): the best epoch so far is kept
    traffic: int = 300  # simulated requests from fresh users before the monitor looks at the logs
    run_timeout_s: float = 3600.0

    def train_parameters(self) -> dict:
        # warm-up held to 2 epochs so that even a short budget reaches the joint epochs that train the
        # interest dictionary (the budget is checked after each epoch; a warm-up-only model has no interests).
        # One thread: on 2 cores shared with the server and the service, two torch threads wait on each
        # other (measured: an epoch 3-5x slower when the cores are busy)
        return {"dataset": "simulator", "preset": self.preset,
                "overrides": [f"train.max_time_s={self.train_seconds:g}", "gemirec.warmup_epochs=2",
                              "gemirec.min_warmup_epochs=2", "train.threads=1"]}


class Demo:
    def __init__(self, cfg: DemoConfig, console: Console):
        self.cfg, self.console, self.start = cfg, console, time.monotonic()

    def say(self, text: str) -> None:
        self.console.print(f"[dim]{time.monotonic() - self.start:6.0f}s[/]  {text}", soft_wrap=True)

    def run(self) -> dict:
        from prefect.settings import PREFECT_API_URL, temporary_settings

        st = self.cfg.stack
        self.say(f"[bold]Prefect[/]: server + deployments on {st.prefect_ui} (reused when running)")
        api_url = server.up(st.prefect)
        with temporary_settings(updates={PREFECT_API_URL: api_url}):
            train_run = self.deployment_run(TRAIN, self.cfg.train_parameters())
            version = self.registered(train_run)
            self.say(f"[bold]BentoML[/]: bentoml serve of {version.tag} on {st.service_url}")
            url, health = self.serve_production(version)
            traffic_start = time.monotonic()
            self.sample_request(url)
            if health.get("feature_store"):
                self.user_request(url)
            self.traffic(url)
            # the window holds this demo's requests only: an earlier demo's were answered by another model;
            # no retraining trigger, so the demo ends with the stack idle
            window_hours = (time.monotonic() - traffic_start + 60.0) / 3600.0
            monitor_run = self.deployment_run(f"{MONITOR}/{MONITOR}", {
                "registry_name": st.registry_name, "window_hours": window_hours, "trigger": False})
        self.say(f"[bold]Evidently[/]: UI on the workspace {st.workspace.path}")
        ui = stack.start_monitoring_ui(st)
        seconds = time.monotonic() - self.start
        self.console.print(
            f"\n[bold green]demo finished in {seconds:.0f}s[/]; still running, for you to explore:\n"
            f"  Prefect UI      {st.prefect_ui}  (runs {train_run.name}, {monitor_run.name})\n"
            f"  GemiRec service {url}  (POST /recommend /interests /similar_items, GET /health)\n"
            f"  Evidently UI    {ui}  (project gemirec: drift and interest health)\n"
            "stop everything with: make down   (or gemirec down)", soft_wrap=True)
        return {"seconds": seconds, "model": version.tag, "service": url, "evidently": ui,
                "prefect": st.prefect_ui}

    # ---------------------------------------------------------------- steps

    def deployment_run(self, name: str, parameters: dict, tags: tuple[str, ...] = ("demo",)):
        """Start a deployment run (as `prefect deployment run` does), follow its state and log here."""
        from prefect.client.orchestration import get_client
        from prefect.deployments import run_deployment

        run = run_deployment(name, parameters=parameters, timeout=0, tags=list(tags))
        self.say(f"[bold]{name}[/]: run {run.name}, {self.cfg.stack.prefect_ui}/runs/flow-run/{run.id}")
        with get_client(sync_client=True) as client:
            state = self.follow(client, run.id)
        if not state.is_completed():
            raise DemoError(f"{name} run {run.name} ended {state.type.value}: {state.message}; its log is at "
                            f"{self.cfg.stack.prefect_ui}/runs/flow-run/{run.id}")
        return run

    def follow(self, client, run_id: UUID):
        from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
        from prefect.client.schemas.sorting import LogSort

        seen = set()

        def new_lines():
            logs, page = [], None
            while page is None or len(page) == 200:  # the API's largest page
                page = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])), limit=200,
                                        offset=len(logs), sort=LogSort.TIMESTAMP_ASC)
                logs += page
            for line in logs:
                if line.id not in seen:
                    seen.add(line.id)
                    if not line.message.startswith(QUIET):
                        self.say(f"  [cyan]{line.name}[/] {line.message.splitlines()[0]}")

        last_state = None
        deadline = time.monotonic() + self.cfg.run_timeout_s
        while True:
            state = client.read_flow_run(run_id).state
            if state.name != last_state:
                self.say(f"  state {state.name}")
                last_state = state.name
            new_lines()
            if state.is_final():
                time.sleep(3.0)  # the run's last log lines are shipped in a batch after its final state
                new_lines()
                return state
            if time.monotonic() > deadline:
                raise DemoError(f"run {run_id} still {state.name} after {self.cfg.run_timeout_s:.0f}s")
            time.sleep(2.0)

    def registered(self, run) -> registry.Version:
        """Report the version this run registered (its metadata names the flow run); return production."""
        st = self.cfg.stack
        for v in registry.versions(st.registry):
            if v.metadata.get("flow_run") == str(run.id):
                val, test = (100 * v.metadata["metrics"][part]["recall@50"] for part in ("val", "test"))
                self.say(f"registered {v.tag}: Recall@50 {val:.2f} (validation), {test:.2f} (test); gate: "
                         f"{v.labels.get('gate')} ({v.metadata.get('gate', {}).get('reason', '')})")
        current = stack.production(st)
        self.say(f"production model: {current.tag}")
        return current

    def serve_production(self, version: registry.Version, env: dict | None = None) -> tuple[str, dict]:
        """`bentoml serve` of production (a running one is reused), connected to the Feast store the version
        recorded: a service started before its version recorded one is restarted. Returns (url, /health)."""
        from serving.launch import stop_background

        st = self.cfg.stack
        url = stack.start_service(st, env, serving=version.tag)
        health = httpx.get(f"{url}/health", timeout=10).json()
        if version.metadata.get("feature_store") and not health.get("feature_store"):
            self.say("the running service reads no feature store: restarting it on the version's")
            stop_background(st.service_pid_file)
            url = stack.start_service(st, env, serving=version.tag)
            health = httpx.get(f"{url}/health", timeout=10).json()
        return url, health

    def sample_request(self, url: str) -> None:
        from monitoring.scenario import ScenarioConfig, replay_histories

        history = replay_histories(ScenarioConfig(n_requests=1))[0][-20:]  # a user the model never saw
        # items the simulator made after training are unknown to the model: drop them rather than get a 422
        body = {"history": history, "n": 10, "unknown_items": "drop"}
        self.say(f"POST {url}/recommend {json.dumps(body)}")
        response = httpx.post(f"{url}/recommend", json=body, timeout=30)
        if response.status_code != 200:
            raise DemoError(f"/recommend answered {response.status_code}: {response.text}")
        answer = response.json()
        for i in answer["interests"]:
            line = f"interest {i['index']}  p={i['prob']:.2f}  code {i['code']}  {i['label']}"
            self.console.print(" " * 9 + line)
        table = Table(title=f"top 10 from {answer['model_version']}")
        for column in ("rank", "item", "score", "from interest"):
            table.add_column(column)
        for rank, item in enumerate(answer["items"], start=1):
            via = item["interest"]
            table.add_row(str(rank), str(item["item_id"]), f"{item['score']:.4f}",
                          f"{via['index']}: {via['label']}" if via["index"] >= 0 else via["label"])
        self.console.print(table)

    def user_request(self, url: str, user_id: int = 5) -> None:
        """A training user by id: the service reads the history from the Feast store its version recorded."""
        body = {"user_id": user_id, "n": 10}
        self.say(f"POST {url}/recommend {json.dumps(body)}")
        response = httpx.post(f"{url}/recommend", json=body, timeout=30)
        if response.status_code != 200:
            raise DemoError(f"/recommend by user id answered {response.status_code}: {response.text[:300]}")
        answer = response.json()
        self.console.print(" " * 9 + f"cold_start {answer['cold_start']}, history of {answer['history_len']} items "
                           f"from the feature store, top items {[i['item_id'] for i in answer['items']]}")

    def traffic(self, url: str) -> None:
        """Fresh simulator users (the drift scenario's, unshifted) as requests; the service logs each."""
        from monitoring.scenario import ScenarioConfig, replay_histories

        cfg = ScenarioConfig(n_requests=self.cfg.traffic)
        self.say(f"sending {cfg.n_requests} requests of fresh simulator users (logged for the monitor)")
        failed = []
        with httpx.Client(base_url=url, timeout=30) as client:
            for history in replay_histories(cfg):
                r = client.post("/recommend", json={"history": history, "n": cfg.n, "unknown_items": "drop"})
                if r.status_code != 200:
                    failed.append(f"{r.status_code} {r.text[:200]}")
        if failed:
            raise DemoError(f"{len(failed)} of {cfg.n_requests} requests failed, e.g. {failed[0]}")
