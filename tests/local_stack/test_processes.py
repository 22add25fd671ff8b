import subprocess
import sys
import time

from local_stack import processes


def test_start_find_and_stop_a_background_process_group(tmp_path):
    pid_file, log = tmp_path / "child.pid", tmp_path / "child.log"
    # the child spawns a grandchild: stopping the group must take both
    code = ("import subprocess, sys, time; print('up', flush=True); "
            "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); time.sleep(60)")
    proc = processes.start([sys.executable, "-c", code, "gemirec-test-marker"], pid_file, log)
    assert int(pid_file.read_text()) == proc.pid
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
