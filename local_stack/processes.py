"""Background servers with pid files: start in their own session, find again, probe over HTTP, stop.

The Prefect server, the deployment process, `bentoml serve` and `evidently ui` are all started the same
way: a child in a new session (so it leads its own process group and everything it spawns — uvicorn
workers, flow-run subprocesses — can be stopped with it), its pid written to a file so that a later
command (`gemirec down`) can find it. Pids get reused, so a pid only counts as ours while its command
line still carries the marker we started it with. No framework is imported here: flows/, serving/ and
monitoring/ all use it without importing each other.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path


class NotReady(RuntimeError):
    """A background server exited, or did not answer 200 in time."""


def http_status(url: str, timeout: float = 5.0) -> int | None:
    """The HTTP status `url` answers with (any status, errors included), or None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as err:  # something listens there, even if it says no
        return err.code
    except (urllib.error.URLError, OSError):
        return None


def command_line(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return None


def alive(pid: int, *markers: str) -> bool:
    """`pid` runs and its command line still holds every marker (i.e. it is still the process we started)."""
    cmdline = command_line(pid)
    return cmdline is not None and all(m in cmdline for m in markers)


def running_pid(pid_file: Path, *markers: str) -> int | None:
    """The pid in `pid_file` if that process still runs and is ours; None otherwise."""
    try:
        pid = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if alive(pid, *markers) else None


def wait_ready(url: str, proc: subprocess.Popen, what: str, timeout: float,
               where: Callable[[], str] = lambda: "", interval: float = 0.5) -> None:
    """Poll `url` until it answers 200; raise NotReady as soon as `proc` exits or `timeout` passes.
    `where()` is appended to the message (a log path, the log's tail); it runs only on failure."""
    deadline = time.monotonic() + timeout
    while http_status(url, timeout=2.0) != 200:
        if proc.poll() is not None:
            raise NotReady(f"{what} exited with code {proc.returncode}{where()}")
        if time.monotonic() > deadline:
            raise NotReady(f"{what} not ready after {timeout:.0f} s{where()}")
        time.sleep(interval)


def start(command: list[str], pid_file: Path, logfile: Path, env: dict[str, str] | None = None,
          cwd: Path | None = None) -> subprocess.Popen:
    """Start `command` in a new session with output appended to `logfile`; write its pid to `pid_file`."""
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    with open(logfile, "ab") as sink:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=sink, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    pid_file.write_text(f"{proc.pid}\n")
    return proc


def stop(pid_file: Path, *markers: str, timeout: float = 20.0) -> int | None:
    """Stop the process group `pid_file` names (SIGTERM, then SIGKILL if it lingers past `timeout`);
    remove the pid file; return the pid, or None when it was not running."""
    pid = running_pid(pid_file, *markers)
    if pid is not None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, sig)  # the child leads its own group (start_new_session): pgid == pid
            deadline = time.monotonic() + timeout
            while alive(pid, *markers) and time.monotonic() < deadline:
                time.sleep(0.2)
            if not alive(pid, *markers):
                break
    pid_file.unlink(missing_ok=True)
    return pid
