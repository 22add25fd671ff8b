"""Stopping never misses a process (BentoML workers in sessions of their own, a force-killed arbiter) and
never hits a stranger (a reused pid, a look-alike command line)."""

import os
import signal
import subprocess
import sys
import time

import psutil

from local_stack import processes


def _sleeper(*marker: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", *marker])


def _wait_cmdline(pid: int, marker: str) -> None:
    deadline = time.monotonic() + 10  # the command line reads empty for an instant after exec
    while marker not in (processes.command_line(pid) or "") and time.monotonic() < deadline:
        time.sleep(0.05)


def test_a_reused_pid_with_the_same_markers_is_not_ours(tmp_path):
    """The Evidently UI's markers ("evidently", " ui") match any `evidently ui`: the start time decides."""
    stranger = _sleeper("evidently", "ui")
    try:
        _wait_cmdline(stranger.pid, "evidently ui")
        pid_file = tmp_path / "ui.pid"
        started = processes.start_time(stranger.pid)
        pid_file.write_text(f"{stranger.pid} {started - 50} deadbeef\n")  # our process, long gone
        assert processes.running_pid(pid_file, "evidently", " ui") is None
        assert processes.stop(pid_file, "evidently", " ui", timeout=2) is None
        assert stranger.poll() is None  # untouched
        pid_file.write_text(f"{stranger.pid} {started} deadbeef\n")  # the very process: it is ours
        assert processes.running_pid(pid_file, "evidently", " ui") == stranger.pid
    finally:
        stranger.kill()
        stranger.wait()


def test_stop_takes_descendants_that_left_the_process_group(tmp_path):
    """A grandchild in a session of its own (what circus does with each BentoML worker)."""
    pid_file, log = tmp_path / "child.pid", tmp_path / "child.log"
    code = ("import subprocess, sys, time; "
            "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'], "
            "start_new_session=True); print(p.pid, flush=True); time.sleep(120)")
    proc = processes.start([sys.executable, "-c", code, "gemirec-test-marker"], pid_file, log)
    deadline = time.monotonic() + 20
    while not log.read_text().strip() and time.monotonic() < deadline:
        time.sleep(0.05)
    grandchild = int(log.read_text().split()[0])
    assert os.getsid(grandchild) != os.getsid(proc.pid)  # out of reach of a process-group kill
    proc.kill()  # the leader dies first, by force: the grandchild is orphaned
    proc.wait()
    assert psutil.pid_exists(grandchild)
    assert processes.stop(pid_file, "gemirec-test-marker", timeout=5) == proc.pid
    deadline = time.monotonic() + 10
    while psutil.pid_exists(grandchild) and psutil.Process(grandchild).status() != psutil.STATUS_ZOMBIE \
            and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not psutil.pid_exists(grandchild) or psutil.Process(grandchild).status() == psutil.STATUS_ZOMBIE


def test_down_frees_the_port_after_the_arbiter_was_force_killed(tmp_path, tiny_model_folder):
    """`gemirec serve --background` then SIGKILL to BentoML's arbiter: its worker keeps the port until
    `gemirec down` (stop_background) finds it by tag and stops it."""
    from serving.launch import free_port, start_background, stop_background

    port, pid_file = free_port(), tmp_path / "service.pid"
    env = {"GEMIREC_MODEL_FOLDER": str(tiny_model_folder), "GEMIREC_LOG_DIR": str(tmp_path / "logs")}
    url = start_background(env, port, pid_file, ready_timeout_s=240)
    arbiter = int(pid_file.read_text().split()[0])
    try:
        workers = psutil.Process(arbiter).children(recursive=True)
        assert workers and all(os.getsid(w.pid) != os.getsid(arbiter) for w in workers)
        os.kill(arbiter, signal.SIGKILL)
        time.sleep(1)
        assert processes.http_status(f"{url}/livez") == 200  # the orphaned worker still serves
        assert stop_background(pid_file, timeout=10) == arbiter
        assert processes.http_status(f"{url}/livez", timeout=2) is None
        assert not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers)
    finally:
        stop_background(pid_file, timeout=5)
