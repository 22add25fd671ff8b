"""The local stack `gemirec demo` leaves running, and `gemirec down` stops: the Prefect server and the process
serving our deployments (flows/server.py), `bentoml serve` of the production model, and the Evidently UI.

Each runs in its own process group with a pid file (`.prefect/*.pid`, `runs/serving/service.pid`,
`runs/evidently/ui.pid`), binds 127.0.0.1 only, and is reused when it already runs, so starting twice is safe.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from flows import server
from flows.server import ROOT, LocalPrefect
from local_stack.processes import http_status
from monitoring.workspace import WorkspaceConfig, start_ui, stop_ui
from serving import registry
from serving.launch import background_pid, start_background, stop_background

DEFAULT_REGISTRY = "gemirec-simulator"  # what train-gemirec registers for the embedded simulator


class StackError(RuntimeError):
    pass


@dataclass(frozen=True)
class Stack:
    root: Path = ROOT
    prefect_port: int = 4200
    service_port: int = 3000
    ui_port: int = 8000
    registry_name: str = DEFAULT_REGISTRY

    @property
    def prefect(self) -> LocalPrefect:
        return LocalPrefect(root=self.root, port=self.prefect_port)

    @property
    def prefect_ui(self) -> str:
        return self.prefect.api_url.removesuffix("/api")

    @property
    def workspace(self) -> WorkspaceConfig:
        # the monitor-gemirec deployment writes to runs/evidently below the deployment process's cwd (root)
        return WorkspaceConfig(path=self.root / "runs" / "evidently", port=self.ui_port)

    @property
    def service_pid_file(self) -> Path:
        return self.root / "runs" / "serving" / "service.pid"

    @property
    def service_url(self) -> str:
        return f"http://127.0.0.1:{self.service_port}"

    @property
    def registry(self) -> registry.Registry:
        return registry.Registry(None, self.registry_name)


def production(stack: Stack) -> registry.Version:
    """The production version, or a StackError that says how to get one."""
    version = registry.production(stack.registry)
    if version is None:
        raise StackError(
            f"no promoted model in registry {stack.registry_name} ({stack.registry.root}) yet: run "
            "`make demo` (or `gemirec up` and `prefect deployment run train-gemirec/train-gemirec`) first")
    return version


def _health(url: str) -> dict:
    try:
        return httpx.get(f"{url}/health", timeout=5).json()
    except (httpx.HTTPError, ValueError):
        return {}


def start_service(stack: Stack, env: dict[str, str] | None = None, serving: str | None = None,
                  reload_wait_s: float = 30.0) -> str:
    """`bentoml serve` in the background on the registry's production model (or ``env``'s folder). A running
    one is kept: it picks up a newly promoted version by itself (GEMIREC_RELOAD_S, 10 s); if it does not
    serve ``serving`` within ``reload_wait_s`` it is restarted."""
    env = {"GEMIREC_REGISTRY_NAME": stack.registry_name, **(env or {})}
    if "GEMIREC_MODEL_FOLDER" not in env:
        production(stack)
    if background_pid(stack.service_pid_file):
        deadline = time.monotonic() + reload_wait_s
        while time.monotonic() < deadline:
            health = _health(stack.service_url)
            if health.get("ready") and serving in (None, health.get("model_version")):
                return stack.service_url
            time.sleep(1.0)
        stop_background(stack.service_pid_file)
    elif http_status(stack.service_url) is not None:
        raise StackError(f"{stack.service_url} is taken by another server; stop it first")
    return start_background(env, stack.service_port, stack.service_pid_file)


def start_monitoring_ui(stack: Stack) -> str:
    return start_ui(stack.workspace)


def down(stack: Stack) -> list[str]:
    """Stop everything the stack started, the service first (it holds no state of its own)."""
    stopped = []
    pid = stop_background(stack.service_pid_file)
    if pid:
        stopped.append(f"bentoml serve (pid {pid})")
    if stop_ui(stack.workspace):
        stopped.append("evidently ui")
    return stopped + server.down(stack.prefect)
