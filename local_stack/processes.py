"""Background servers with pid files: start in their own session, find again, probe over HTTP, stop.

The Prefect server, the deployment process, `bentoml serve` and `evidently ui` are all started the same
way: a child in a new session, its pid written to a file so that a later command (`gemirec down`) can find
it. Stopping must neither miss a process nor hit a stranger:

- Miss: a process group is not enough. BentoML's arbiter (circus) starts each worker in a session of its
  own, and a force-killed arbiter leaves its workers orphaned, still holding the port. So every process
  started here carries a random tag in its environment (GEMIREC_PROC_TAG, inherited by everything it
  spawns, whatever session or parent it ends up with), and `stop` kills the leader's live descendants plus
  every process carrying the tag: children first walked, then all signalled.
- Hit: pids get reused. The pid file records the process's start time beside its pid; a pid only counts as
  ours while it still has that start time (and its command line still holds the markers). A tagged
  process is ours by construction: the tag is 128 random bits.

No framework is imported here: flows/, serving/ and monitoring/ all use it without importing each other.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

TAG_VAR = "GEMIREC_PROC_TAG"
START_TOLERANCE_S = 1.0  # psutil derives start times from boot time + ticks: equal to well under this


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


def start_time(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None


def alive(pid: int, *markers: str, started: float | None = None) -> bool:
    """`pid` runs, its command line still holds every marker and, when `started` is given, it started
    then: i.e. it is still the process we started, not a later one that reuses the pid."""
    cmdline = command_line(pid)
    if cmdline is None or not all(m in cmdline for m in markers):
        return False
    if started is None:
        return True
    now = start_time(pid)
    return now is not None and abs(now - started) < START_TOLERANCE_S


@dataclass(frozen=True)
class PidRecord:
    pid: int
    started: float | None  # None: a pid file written before start times were recorded
    tag: str | None


def read_record(pid_file: Path) -> PidRecord | None:
    """``<pid> [<start time> [<tag>]]``; None when the file is missing or garbled."""
    try:
        fields = pid_file.read_text().split()
        started = float(fields[1]) if len(fields) > 1 else float("nan")
        return PidRecord(int(fields[0]), None if started != started else started,
                         fields[2] if len(fields) > 2 else None)
    except (OSError, ValueError, IndexError):
        return None


def running_pid(pid_file: Path, *markers: str) -> int | None:
    """The pid in `pid_file` if that process still runs and is ours; None otherwise."""
    record = read_record(pid_file)
    if record is None:
        return None
    return record.pid if alive(record.pid, *markers, started=record.started) else None


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
    """Start `command` in a new session with output appended to `logfile`; write its pid, start time and
    tag to `pid_file`."""
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    with open(logfile, "ab") as sink:  # the child keeps its own copy of the descriptor
        proc, record = spawn(command, env, cwd=cwd, stdout=sink, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL)
    pid_file.write_text(f"{record.pid} {record.started if record.started is not None else 'nan'} "
                        f"{record.tag}\n")
    return proc


def spawn(command: list[str], env: dict[str, str] | None = None, **popen) -> tuple[subprocess.Popen, PidRecord]:
    """Popen in a new session with a fresh tag in its environment; the record `stop_record` needs."""
    tag = secrets.token_hex(16)
    proc = subprocess.Popen(command, env={**(os.environ if env is None else env), TAG_VAR: tag},
                            start_new_session=True, **popen)
    return proc, PidRecord(proc.pid, start_time(proc.pid), tag)


def tagged(tag: str) -> list[psutil.Process]:
    """Every process whose environment carries `tag` (root reads any environment; others their own)."""
    found = []
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if proc.environ().get(TAG_VAR) == tag:
                found.append(proc)
    return found


def tree(record: PidRecord, *markers: str) -> list[psutil.Process]:
    """The leader (if still ours), its live descendants and every tagged process, walked before any
    signal is sent so that no child escapes by being re-parented mid-way."""
    procs: dict[int, psutil.Process] = {}
    if alive(record.pid, *markers, started=record.started):
        with contextlib.suppress(psutil.Error):
            leader = psutil.Process(record.pid)
            procs[leader.pid] = leader
            for child in leader.children(recursive=True):
                procs[child.pid] = child
    if record.tag:
        for proc in tagged(record.tag):
            procs.setdefault(proc.pid, proc)
    return list(procs.values())


def stop(pid_file: Path, *markers: str, timeout: float = 20.0) -> int | None:
    """Stop the process `pid_file` names and everything it started (SIGTERM, then SIGKILL for what
    lingers past `timeout`); remove the pid file; return the pid, or None when nothing of it ran."""
    record = read_record(pid_file)
    found = record is not None and stop_record(record, *markers, timeout=timeout)
    pid_file.unlink(missing_ok=True)
    return record.pid if found else None


def stop_record(record: PidRecord, *markers: str, timeout: float = 20.0) -> bool:
    """Stop the process `record` names with everything it started; False when nothing of it ran.

    The leader goes first (an arbiter then stops its own workers gracefully and respawns none); whatever
    of the tree is left, found again by walk and tag in case a worker was respawned meanwhile, gets a
    SIGTERM, then a SIGKILL past `timeout`."""
    procs = tree(record, *markers)
    if not procs:
        return False
    leader = [p for p in procs if p.pid == record.pid]
    _signal(leader, signal.SIGTERM)
    psutil.wait_procs(leader, timeout=timeout)
    for sig, wait_s in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
        left = {p.pid: p for p in procs if p.is_running()} | {p.pid: p for p in tree(record, *markers)}
        if not left:
            break
        _signal(list(left.values()), sig)
        psutil.wait_procs(list(left.values()), timeout=wait_s)
    return True


def _signal(procs: list[psutil.Process], sig: int) -> None:
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.send_signal(sig)  # psutil checks first that the pid still names this very process
