import socket
import subprocess
import sys
import time

import pytest

from local_stack import processes


def test_start_find_and_stop_a_background_process_group(tmp_path):
    pid_file, log = tmp_path / "child.pid", tmp_path / "child.log"
    # the child spawns a grandchild: stopping the group must take both
    code = ("import subprocess, sys, time; print('up', flush=True); "
            "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); time.sleep(60)")
    proc = processes.start([sys.executable, "-c", code, "gemirec-test-marker"], pid_file, log)
    assert int(pid_file.read_text().split()[0]) == proc.pid  # then its start time and tag
    deadline = time.monotonic() + 10  # the command line reads empty for an instant after exec
    while b"up" not in log.read_bytes() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes.running_pid(pid_file, "gemirec-test-marker") == proc.pid
    assert processes.running_pid(pid_file, "some-other-program") is None  # a reused pid is not ours
    group = subprocess.run(["pgrep", "-g", str(proc.pid)], capture_output=True, text=True).stdout.split()
    assert len(group) >= 2
    assert processes.stop(pid_file, "gemirec-test-marker", timeout=5) == proc.pid
    proc.wait(timeout=5)
    assert not pid_file.exists()
    deadline = time.monotonic() + 10  # the orphaned grandchild is reaped by init a moment later
    while any(processes.command_line(int(p)) for p in group) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(processes.command_line(int(p)) for p in group)
    assert processes.stop(pid_file, "gemirec-test-marker") is None  # nothing left to stop


def test_running_pid_tolerates_missing_and_garbled_pid_files(tmp_path):
    assert processes.running_pid(tmp_path / "absent.pid") is None
    (tmp_path / "bad.pid").write_text("not a pid\n")
    assert processes.running_pid(tmp_path / "bad.pid") is None


def test_http_status_is_none_when_nothing_listens():
    assert processes.http_status("http://127.0.0.1:9/", timeout=1) is None


def test_wait_ready_returns_once_the_server_answers(tmp_path):
    port = _free_port()
    code = ("import http.server as h; "
            f"h.HTTPServer(('127.0.0.1', {port}), h.SimpleHTTPRequestHandler).serve_forever()")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=tmp_path)
    try:
        processes.wait_ready(f"http://127.0.0.1:{port}/", proc, "the test server", timeout=30, interval=0.1)
        assert processes.http_status(f"http://127.0.0.1:{port}/") == 200
    finally:
        proc.kill()
        proc.wait()


def test_wait_ready_reports_an_early_exit_with_where_to_look(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    with pytest.raises(processes.NotReady, match=r"the test server exited with code 3; see the log"):
        processes.wait_ready(f"http://127.0.0.1:{_free_port()}/", proc, "the test server", timeout=30,
                             where=lambda: "; see the log", interval=0.1)


def test_wait_ready_times_out_when_nothing_answers():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        with pytest.raises(processes.NotReady, match="not ready after 1 s"):
            processes.wait_ready(f"http://127.0.0.1:{_free_port()}/", proc, "the test server", timeout=1,
                                 interval=0.1)
    finally:
        proc.kill()
        proc.wait()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
