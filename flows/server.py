"""A local Prefect server plus the process serving our deployments, in the background, with pid files.

    gemirec up      # or: make prefect-up
    export PREFECT_API_URL=http://127.0.0.1:4200/api
    prefect deployment run train-gemirec/train-gemirec --watch
    gemirec down    # or: make prefect-down

Everything Prefect keeps (its SQLite database, logs, pid files) lives in the project's ``.prefect/``, so the
user's own Prefect profile is left alone. Only 127.0.0.1 is bound; analytics are off.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from flows.serve import DEPLOYMENT
from flows.train_flow import DOMAIN_LOGGERS
from local_stack import processes
from local_stack.processes import http_status

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
SERVER, SERVE = "prefect server", "flows.serve"  # how each process's command line identifies it


class ServerError(RuntimeError):
    pass


@dataclass(frozen=True)
class LocalPrefect:
    root: Path = ROOT
    host: str = "127.0.0.1"
    port: int = 4200
    start_timeout_s: float = 180.0  # a busy 2-core machine needs a minute or more for the first start

    @property
    def home(self) -> Path:
        return self.root / ".prefect"

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.port}/api"

    def pid_file(self, name: str) -> Path:
        return self.home / f"{name}.pid"

    def env(self) -> dict[str, str]:
        return {**os.environ, "PREFECT_HOME": str(self.home), "PREFECT_API_URL": self.api_url,
                "PREFECT_SERVER_API_HOST": self.host, "PREFECT_SERVER_API_PORT": str(self.port),
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "BENTOML_DO_NOT_TRACK": "True",
                "PREFECT_LOGGING_EXTRA_LOGGERS": ",".join(DOMAIN_LOGGERS)}


def healthy(lp: LocalPrefect) -> bool:
    return http_status(f"{lp.api_url}/health") == 200


def _start(lp: LocalPrefect, name: str, command: list[str]) -> subprocess.Popen:
    # its own session: `down` stops it with everything it spawned (uvicorn, flow-run subprocesses)
    proc = processes.start(command, lp.pid_file(name), lp.home / f"{name}.log", env=lp.env(), cwd=lp.root)
    log.info("started %s (pid %d), log in %s", name, proc.pid, lp.home / f"{name}.log")
    return proc


def _wait_for(url: str, proc: subprocess.Popen, what: str, timeout: float, logfile: Path) -> None:
    try:
        processes.wait_ready(url, proc, what, timeout, where=lambda: f"; see {logfile}", interval=1.0)
    except processes.NotReady as err:
        raise ServerError(str(err)) from err


def up(lp: LocalPrefect | None = None) -> str:
    """Start the server (unless ours already runs) and the deployment process; return the API url."""
    lp = lp or LocalPrefect()
    lp.home.mkdir(parents=True, exist_ok=True)
    prefect = str(Path(sys.executable).with_name("prefect"))
    server_pid = processes.running_pid(lp.pid_file("server"), SERVER)
    if server_pid:
        log.info("server already running (pid %d)", server_pid)
    else:
        if http_status(f"{lp.api_url}/health") is not None:
            raise ServerError(f"port {lp.port} is taken by another server; stop it or pass another port")
        server = _start(lp, "server", [prefect, "server", "start", "--host", lp.host,
                                       "--port", str(lp.port), "--analytics-off"])
        _wait_for(f"{lp.api_url}/health", server, "prefect server", lp.start_timeout_s,
                  lp.home / "server.log")
        server_pid = server.pid
    serve_pid = processes.running_pid(lp.pid_file("serve"), SERVE)
    if serve_pid:
        log.info("deployments already served (pid %d)", serve_pid)
    else:
        serve = _start(lp, "serve", [sys.executable, "-m", "flows.serve"])
        _wait_for(f"{lp.api_url}/deployments/name/train-gemirec/{DEPLOYMENT}", serve, "deployment process",
                  lp.start_timeout_s, lp.home / "serve.log")
        serve_pid = serve.pid
    (lp.home / "state.json").write_text(json.dumps({"api_url": lp.api_url, "server_pid": server_pid,
                                                     "serve_pid": serve_pid}, indent=1))
    return lp.api_url


def down(lp: LocalPrefect | None = None, timeout: float = 30.0) -> list[str]:
    """Stop the deployment process, then the server: SIGTERM to each process group, SIGKILL if it lingers."""
    lp = lp or LocalPrefect()
    stopped = []
    for name, marker in (("serve", SERVE), ("server", SERVER)):
        pid = processes.stop(lp.pid_file(name), marker, timeout=timeout)
        if pid is not None:
            stopped.append(f"{name} (pid {pid})")
    return stopped
