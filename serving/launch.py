"""Start and stop a real `bentoml serve` of the service on 127.0.0.1.

    with serve({"GEMIREC_REGISTRY_NAME": "gemirec-simulator"}) as server:     # tests, the benchmark
        httpx.post(f"{server.url}/recommend", json={"history": [1, 2, 3]})

    url = start_background(env, 3000, Path("runs/serving/service.pid"))    # outlives the caller
    stop_background(Path("runs/serving/service.pid"))                      # `gemirec down`
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from local_stack import processes

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
SERVICE = "serving.service:GemiRec"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    output: Path  # the server's stdout + stderr

    def tail(self, n: int = 40) -> str:
        return "\n".join(self.output.read_text(errors="replace").splitlines()[-n:])


@contextlib.contextmanager
def serve(env: dict[str, str], port: int | None = None, ready_timeout_s: float = 180.0, nice: int = 0
          ) -> Iterator[Server]:
    """Run the service in a new session until the block ends, then stop it and all its workers."""
    port = port or free_port()
    output = Path(tempfile.mkstemp(prefix="gemirec-serve-", suffix=".log")[1])
    full_env = {**os.environ, "BENTOML_DO_NOT_TRACK": "True", "OMP_NUM_THREADS": "1", **env}
    with open(output, "wb") as sink:
        process, record = processes.spawn(_command(port), full_env, cwd=ROOT, stdout=sink,
                                          stderr=subprocess.STDOUT,
                                          preexec_fn=(lambda: os.nice(nice)) if nice else None)
    server = Server(f"http://127.0.0.1:{port}", process, output)
    try:
        _wait_ready(server, ready_timeout_s)
        yield server
    finally:
        _stop(process, record)


def _command(port: int) -> list[str]:
    return [sys.executable, "-m", "bentoml", "serve", SERVICE, "--host", "127.0.0.1", "--port", str(port)]


def _wait_ready(server: Server, timeout_s: float) -> None:
    processes.wait_ready(f"{server.url}/readyz", server.process, "the service", timeout_s,
                         where=lambda: f":\n{server.tail()}", interval=0.25)


def _stop(process: subprocess.Popen, record: processes.PidRecord) -> None:
    """SIGTERM to the arbiter and its workers (graceful: in-flight requests finish), SIGKILL to what
    lingers. Workers live in sessions of their own, so they are found by tag, not by process group."""
    processes.stop_record(record, timeout=20)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)


# ---------------------------------------------------------------- in the background, with a pid file


def background_pid(pid_file: Path) -> int | None:
    """The pid in ``pid_file`` if that process still runs and is our service (pids get reused)."""
    return processes.running_pid(pid_file, SERVICE)


def start_background(env: dict[str, str], port: int, pid_file: Path, ready_timeout_s: float = 180.0) -> str:
    """Start the service in its own session so it outlives the caller; return its url once ready.
    Its output goes to ``<pid_file>.log`` (the name with .log), its pid to ``pid_file``."""
    output = pid_file.with_suffix(".log")
    full_env = {**os.environ, "BENTOML_DO_NOT_TRACK": "True", "OMP_NUM_THREADS": "1", **env}
    process = processes.start(_command(port), pid_file, output, env=full_env, cwd=ROOT)
    server = Server(f"http://127.0.0.1:{port}", process, output)
    try:
        _wait_ready(server, ready_timeout_s)
    except processes.NotReady:
        stop_background(pid_file)
        raise
    log.info("bentoml serve (pid %d) at %s, output in %s", process.pid, server.url, output)
    return server.url


def stop_background(pid_file: Path, timeout: float = 20.0) -> int | None:
    """Stop the service ``start_background`` started, its workers included (SIGTERM, SIGKILL if they
    linger); return its pid, or None when nothing of it was running."""
    return processes.stop(pid_file, SERVICE, timeout=timeout)
