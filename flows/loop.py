"""`gemirec loop`: the closed loop of the product, run end to end and narrated, on the local stack.

    production model (train-gemirec when there is none) → `bentoml serve`, histories by user id from the
    version's Feast store → new users' events pushed online (features/push.py) → their drifted requests →
    a steady client starts counting → `monitor-gemirec` sees the drift and starts `train-gemirec` (a linked
    child run) on the log plus the pushed events → the gate promotes or holds, and says why → the running
    service loads the new version → the client's counts around the swap

Everything binds 127.0.0.1 and is reused when it already runs (flows/stack.py); `gemirec down` stops it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import httpx
from rich.console import Console

from features.simulator import SimulatorConfig
from flows import server, stack
from flows.demo import Demo, DemoConfig, DemoError
from flows.monitor_flow import DEFAULT_RUNS as DEFAULT_MONITOR_RUNS
from flows.monitor_flow import DEPLOYMENT as MONITOR
from flows.monitor_flow import TRAIN_DEPLOYMENT as TRAIN
from flows.steady_client import SteadyClient
from serving import registry


@dataclass(frozen=True)
class LoopConfig:
    stack: stack.Stack = field(default_factory=stack.Stack)
    # train-gemirec parameters of every training in the loop (the first one, when needed, and the retrain)
    train: dict = field(default_factory=lambda: DemoConfig().train_parameters())
    world: SimulatorConfig = field(default_factory=SimulatorConfig)  # the world the training log came from
    shift: float = 1.5  # the new users' topic tilt (SimulatorConfig.shift)
    new_users: int = 1000  # users whose events are pushed and who then ask for recommendations
    drift_threshold: float = 0.3
    client_interval_s: float = 0.05  # the steady client's pause between requests
    reload_s: float = 2.0  # the service's production-pointer poll, when the loop starts it
    run_timeout_s: float = 3600.0
    swap_timeout_s: float = 120.0
    evidently_ui: bool = True  # start the Evidently UI on the monitor's workspace at the end
    recovery: bool = True  # after a swap: more drifted users, monitored against the new version (no trigger)


class Loop(Demo):
    def __init__(self, cfg: LoopConfig, console: Console):
        super().__init__(DemoConfig(stack=cfg.stack, run_timeout_s=cfg.run_timeout_s), console)
        self.loop = cfg

    def run(self) -> dict:
        from prefect.settings import PREFECT_API_URL, temporary_settings

        st = self.loop.stack
        self.say(f"[bold]Prefect[/]: server + deployments on {st.prefect_ui} (reused when running)")
        api_url = server.up(st.prefect)
        with temporary_settings(updates={PREFECT_API_URL: api_url}):
            base = self.baseline()
            url, health = self.service(base)
            push = self.push_new_users(url, health["feature_store"])
            since, until = self.drifted_traffic(url, push["users"])
            client = SteadyClient(url, self.steady_bodies(push["users"]), self.loop.client_interval_s).begin()
            try:
                outcome = self.monitor_and_retrain(health["response_log"], since, until)
                swap = self.swap(url, client, outcome)
            finally:
                client.end()
            recovery = self.recovery(url, health, outcome) if self.loop.recovery else None
        total = client.summary()
        if self.loop.evidently_ui:
            self.say(f"[bold]Evidently[/]: UI at {stack.start_monitoring_ui(st)} (the monitor's snapshot of the "
                     "drifted window)")
        seconds = time.monotonic() - self.start
        self.say(f"[bold]steady client[/]: {total['requests']} requests over the loop, {total['failed']} failed; "
                 f"answered by {total['versions']}")
        self.console.print(f"\n[bold green]loop finished in {seconds:.0f}s[/]; the linked runs are at "
                           f"{st.prefect_ui}/runs (monitor {outcome['monitor']}, train {outcome['train']})",
                           soft_wrap=True)
        return {"seconds": seconds, "base": base.tag, "push": {k: v for k, v in push.items() if k != "users"},
                "traffic": {"since": since, "until": until}, **outcome, "swap": swap, "client": total,
                "recovery": recovery}

    # ---------------------------------------------------------------- steps

    def baseline(self) -> registry.Version:
        """The production version, trained first when there is none or it records no feature store."""
        current = registry.production(self.loop.stack.registry)
        if current is None or not current.metadata.get("feature_store"):
            why = "no production model" if current is None else f"{current.tag} records no feature store"
            self.say(f"{why}: training one")
            run = self.deployment_run(TRAIN, self.loop.train, tags=("loop",))
            current = self.registered(run)
        self.say(f"production model: {current.tag}, feature store {current.metadata['feature_store']}")
        return current

    def service(self, version: registry.Version) -> tuple[str, dict]:
        """`bentoml serve` of production, connected to the version's store (restarted if it is not)."""
        st = self.loop.stack
        env = {"GEMIREC_RELOAD_S": f"{self.loop.reload_s:g}",
               "GEMIREC_LOG_DIR": str(st.root / "runs" / "serving" / "logs")}
        url, health = self.serve_production(version, env)
        if not health.get("feature_store") or not health.get("response_log"):
            raise DemoError(f"the service at {url} has no feature store or no response log: {health}")
        self.say(f"[bold]BentoML[/]: {url} serves {health['model_version']}, histories from "
                 f"{health['feature_store']}, responses logged in {health['response_log']}")
        return url, health

    def push_new_users(self, url: str, store_dir: str, seed: int = 0) -> dict:
        """New users' histories into the online store; one user first, to time a push until it shows.
        ``seed`` picks the users (disjoint per seed)."""
        from pathlib import Path

        from features.fresh_users import fresh_users, history_part
        from features.push import push_events
        from features.store import StoreConfig

        events = history_part(fresh_users(self.loop.world, self.loop.new_users, self.loop.shift, seed))
        users = [int(u) for u in events["user_id"].unique()]
        cfg = StoreConfig(Path(store_dir))
        first = events[events["user_id"] == users[0]]
        before = self.recommend(url, {"user_id": users[0], "n": 10})
        started = time.perf_counter()
        push_events(cfg, first)
        after, polls = self.recommend(url, {"user_id": users[0], "n": 10}), 1
        while after["history_len"] < len(first) and time.perf_counter() - started < 30:
            after, polls = self.recommend(url, {"user_id": users[0], "n": 10}), polls + 1
        latency = time.perf_counter() - started
        self.say(f"[bold]push[/]: user {users[0]} was cold_start={before['cold_start']}; {len(first)} events "
                 f"pushed, then cold_start={after['cold_start']}, history {after['history_len']} items, top "
                 f"{[i['item_id'] for i in after['items'][:5]]}: {latency:.2f} s from push to answer")
        rest = push_events(cfg, events[events["user_id"] != users[0]])
        self.say(f"pushed {rest.accepted} events of {len(users) - 1} more new users ({rest.duplicates} "
                 f"duplicates, {rest.rejected} malformed) in {rest.seconds:.1f} s; also in the log for training")
        return {"users": users, "events": len(events), "latency_s": latency, "polls": polls,
                "cold_before": before["cold_start"], "cold_after": after["cold_start"]}

    def recommend(self, url: str, body: dict) -> dict:
        response = httpx.post(f"{url}/recommend", json=body, timeout=30)
        if response.status_code != 200:
            raise DemoError(f"/recommend {body} answered {response.status_code}: {response.text[:300]}")
        return response.json()

    def drifted_traffic(self, url: str, users: list[int]) -> tuple[str, str]:
        """Every new user asks for recommendations by id (the service logs each answer)."""
        from concurrent.futures import ThreadPoolExecutor
        from datetime import UTC, datetime

        since = datetime.now(UTC).isoformat()
        # a few at a time, as users arrive: the service batches concurrent requests into one model call
        with httpx.Client(base_url=url, timeout=30) as client, ThreadPoolExecutor(4) as pool:
            statuses = list(pool.map(
                lambda user: client.post("/recommend", json={"user_id": user, "n": 50}).status_code, users))
        failed = sum(status != 200 for status in statuses)
        until = datetime.now(UTC).isoformat()
        self.say(f"{len(users)} drifted requests (shift {self.loop.shift:g}) by user id, {failed} failed")
        if failed:
            raise DemoError(f"{failed} of {len(users)} drifted requests failed")
        return since, until

    def steady_bodies(self, new_users: list[int]) -> list[dict]:
        known = [1, 2, 3]  # training users (the simulator numbers users from 1)
        stranger = 10**9  # a user no store knows: the cold-start answer must keep coming too
        return [{"user_id": u, "n": 10} for u in [*known, *new_users[:7], stranger]]

    def monitor_and_retrain(self, logs: str, since: str, until: str) -> dict:
        st = self.loop.stack
        monitor, drift = self.monitor(logs, since, until, trigger=True)
        train = self.child_run(monitor.id)
        if train is None:
            self.say("[bold]monitor-gemirec[/]: no retraining started (no drift past the threshold)")
            return {"monitor": monitor.name, "monitor_id": str(monitor.id), "train": None, "train_id": None,
                    "promoted": False, "reason": "no drift", "tag": None, "drift_share": drift.get("drift_share")}
        self.say(f"[bold]{TRAIN}[/]: run {train.name}, started by {monitor.name} ({st.prefect_ui}/runs/"
                 f"flow-run/{train.id})")
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:
            state = self.follow(client, train.id)
        if not state.is_completed():
            raise DemoError(f"{TRAIN} run {train.name} ended {state.type.value}: {state.message}")
        version = next(v for v in registry.versions(st.registry) if v.metadata.get("flow_run") == str(train.id))
        gate = version.metadata.get("gate", {})
        promoted = version.labels.get("gate") == "promoted"
        self.say(f"[bold]gate[/]: {'promoted' if promoted else 'held'} {version.tag}: {gate.get('reason')}; "
                 f"{version.metadata.get('n_pushed', 0)} pushed events in its log")
        return {"monitor": monitor.name, "monitor_id": str(monitor.id), "train": train.name,
                "train_id": str(train.id), "promoted": promoted, "reason": gate.get("reason"), "tag": version.tag,
                "drift_share": drift.get("drift_share"),
                "columns": {c["column"]: c["score"] for c in drift.get("columns", []) if c.get("score") is not None}}

    def monitor(self, logs: str, since: str, until: str, trigger: bool):
        """A monitor-gemirec deployment run on exactly [since, until]; returns (run, its drift.json)."""
        import json
        from datetime import datetime

        st = self.loop.stack
        hours = (datetime.fromisoformat(until) - datetime.fromisoformat(since)).total_seconds() / 3600 + 1e-4
        run = self.deployment_run(f"{MONITOR}/{MONITOR}", {
            "logs": logs, "registry_name": st.registry_name, "window_hours": hours, "until": until,
            "drift_threshold": self.loop.drift_threshold, "trigger": trigger, "train_parameters": self.loop.train},
            tags=("loop",))
        # the flow's run folder, below the deployment process's working directory (the stack's root)
        result = st.root / DEFAULT_MONITOR_RUNS / f"{run.name}-{str(run.id)[:8]}" / "drift.json"
        return run, json.loads(result.read_text()) if result.exists() else {}

    def recovery(self, url: str, health: dict, outcome: dict) -> dict | None:
        """More drifted users after the swap, monitored against the new version's reference: the second
        snapshot in Evidently, beside the first."""
        if not outcome.get("promoted"):
            return None
        push = self.push_new_users(url, health["feature_store"], seed=1)
        since, until = self.drifted_traffic(url, push["users"])
        run, drift = self.monitor(health["response_log"], since, until, trigger=False)
        before, after = outcome.get("drift_share"), drift.get("drift_share")
        self.say(f"[bold]after the retrain[/]: verdict {drift.get('verdict')}, drift share {after} against the new "
                 f"version's reference (before the retrain: {before})")
        return {"monitor": run.name, "verdict": drift.get("verdict"), "drift_share": drift.get("drift_share"),
                "columns": {c["column"]: c["score"] for c in drift.get("columns", []) if c.get("score") is not None}}

    def child_run(self, parent_id):
        """The train-gemirec run the monitor run started (run_deployment links it as a child run)."""
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId

        with get_client(sync_client=True) as client:
            runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent_id])))
        return runs[0] if runs else None

    def swap(self, url: str, client: SteadyClient, outcome: dict) -> dict:
        """Wait for the service to answer with the promoted version; count the client's requests between the
        promotion and the first answer from it, and around it (promotion − 5 s to then + 5 s)."""
        if not outcome["promoted"]:
            return {"swapped": False}
        promoted_at = self.loop.stack.registry.pointer.stat().st_mtime
        deadline = time.monotonic() + self.loop.swap_timeout_s
        while (first := client.first_answer_from(outcome["tag"])) is None:
            if time.monotonic() > deadline:
                raise DemoError(f"the service did not load {outcome['tag']} within {self.loop.swap_timeout_s}s")
            time.sleep(0.5)
        time.sleep(5.0)  # keep counting a little after the swap
        during = client.summary(promoted_at, first)
        around = client.summary(promoted_at - 5.0, first + 5.0)
        health = httpx.get(f"{url}/health", timeout=10).json()
        self.say(f"[bold]swap[/]: {health['model_version']} served {first - promoted_at:.1f} s after promotion; "
                 f"{during['requests']} requests in between ({during['failed']} failed), {around['requests']} "
                 f"from 5 s before to 5 s after ({around['failed']} failed)")
        return {"swapped": health["model_version"] == outcome["tag"], "seconds": first - promoted_at,
                "during": during, "around": around}
