"""A response log that cannot be written never fails an answer, is reported, and recovers by itself.

Tests run as root, for whom chmod does not stop a write: an unwritable folder is simulated by a plain file
where the folder should be (every open under it fails with ENOTDIR), a full disk by an os.write that raises
ENOSPC.
"""

import errno
import logging
import multiprocessing
import os
import shutil

import pytest

from monitoring.logs import read_window
from serving import response_log
from serving.engine import Engine
from serving.response_log import ResponseLog
from serving.runtime import ModelHolder, ServingConfig
from serving.schemas import RecommendRequest


def record(i: int) -> dict:
    return {"ts": "2025-01-01T00:00:00+00:00", "request_id": f"r{i}", "user_id": None, "history_len": 1,
            "model_version": "v", "interest_codes": [[1]], "interest_probs": [1.0], "items": [i],
            "item_interest": [0], "latency_ms": 1.0}


def request_ids(folder) -> list[str]:
    """Every request id the monitor's reader finds, in file order."""
    window = read_window(folder)
    assert window.n_corrupt == 0
    return [f"r{i}" for i in window.items]


@pytest.fixture
def full_disk(monkeypatch):
    def no_space(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    def on():
        monkeypatch.setattr(response_log.os, "write", no_space)

    return on, monkeypatch.undo


def test_a_full_disk_is_counted_and_the_log_recovers_once_space_is_back(tmp_path, full_disk):
    fill, free = full_disk
    log = ResponseLog(tmp_path, file_mb=1)
    assert log.write(record(0))
    fill()
    assert not any(log.write(record(i)) for i in range(1, 4))
    status = log.status()
    assert status["log_errors"] == 3 and "No space left" in status["last_log_error"]["error"]
    free()
    assert log.write(record(4)) and log.write(record(5))
    log.close()
    assert request_ids(tmp_path) == ["r0", "r4", "r5"]
    assert len(list(tmp_path.glob("*.jsonl"))) == 1  # failed writes reopen the same file, no empty ones


def test_a_folder_that_turns_unwritable_during_rotation_is_counted_then_recovered(tmp_path):
    folder = tmp_path / "logs"
    log = ResponseLog(folder, file_mb=0.0005)  # ~500 bytes: a rotation every few lines
    for i in range(5):
        assert log.write(record(i))
    shutil.rmtree(folder)
    folder.write_text("a file where the folder was")  # every open under it now fails (ENOTDIR)
    failed = sum(not log.write(record(i)) for i in range(5, 20))
    assert failed > 0 and log.status()["log_errors"] == failed
    assert "NotADirectoryError" in log.status()["last_log_error"]["error"]
    folder.unlink()
    folder.mkdir()
    assert all(log.write(record(i)) for i in range(20, 30))  # the next write opens a fresh file
    log.close()
    assert request_ids(folder)[-10:] == [f"r{i}" for i in range(20, 30)]


def test_a_log_folder_removed_under_an_open_file_is_noticed_and_recreated_lines_land(tmp_path):
    """Writes to a deleted file succeed and vanish: the writer checks its file still exists."""
    folder = tmp_path / "logs"
    log = ResponseLog(folder, file_mb=1)
    assert log.write(record(0))
    shutil.rmtree(folder)
    folder.write_text("not a folder")
    assert not log.write(record(1)) and log.status()["log_errors"] == 1
    folder.unlink()
    folder.mkdir()
    assert log.write(record(2))
    log.close()
    assert request_ids(folder) == ["r2"]


def test_a_failed_open_during_rotation_does_not_leave_a_closed_handle(tmp_path, monkeypatch):
    log = ResponseLog(tmp_path, file_mb=0.0005)
    real_open = response_log.os.open
    fail = {"left": 2}

    def flaky_open(*args, **kwargs):
        if fail["left"]:
            fail["left"] -= 1
            raise OSError(errno.EMFILE, "Too many open files")
        return real_open(*args, **kwargs)

    assert log.write(record(0))
    monkeypatch.setattr(response_log.os, "open", flaky_open)
    results = [log.write(record(i)) for i in range(1, 40)]  # crosses several rotations
    assert results.count(False) == 2 and log.status()["log_errors"] == 2
    assert all(results[results.index(False, results.index(False) + 1) + 1:])  # recovered for good
    log.close()
    assert len(request_ids(tmp_path)) == 38


def test_a_handle_closed_under_the_writer_is_replaced_without_losing_the_line(tmp_path):
    log = ResponseLog(tmp_path, file_mb=1)
    assert log.write(record(0))
    os.close(log._fd)  # what "I/O operation on closed file" was: a handle gone bad under the writer
    assert log.write(record(1)) and log.status()["log_errors"] == 0
    log.close()
    assert request_ids(tmp_path) == ["r0", "r1"]


def test_failures_warn_at_most_once_a_minute(tmp_path, full_disk, caplog):
    fill, _ = full_disk
    log = ResponseLog(tmp_path)
    fill()
    with caplog.at_level(logging.WARNING, logger="serving.response_log"):
        for i in range(50):
            log.write(record(i))
    assert log.errors == 50
    assert len([r for r in caplog.records if "write failed" in r.getMessage()]) == 1


def test_the_answer_goes_out_when_the_log_cannot_be_written(tmp_path, tiny_model_folder, full_disk):
    fill, free = full_disk
    holder = ModelHolder(ServingConfig(model_folder=tiny_model_folder, log_dir=None))
    holder.start()
    engine = Engine(holder, response_log=ResponseLog(tmp_path / "logs"))
    fill()
    for _ in range(3):
        p = engine.prepare(RecommendRequest(history=[1, 2, 3], n=5))
        assert len(engine.answer(p, engine.compute([p])[0]).items) == 5
    free()
    status = holder.status()  # what /health shows
    assert status["ready"] and status["log_errors"] == 3 and status["last_log_error"] is not None


def _writer(folder: str, worker: int, n: int) -> None:
    log = ResponseLog(folder, file_mb=0.002, max_files=40)  # ~2 kB files: a rotation every ~10 lines
    for i in range(n):
        assert log.write(record(worker * 100_000 + i))
    log.close()


def test_two_worker_processes_never_delete_each_others_lines(tmp_path):
    """Each writer makes ~30 files, the folder bound is 40: pruning by name across writers (the old rule)
    deleted the other worker's files, the open one included."""
    n = 300
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_writer, args=(str(tmp_path), w, n)) for w in (1, 2)]
    for p in workers:
        p.start()
    for p in workers:
        p.join(timeout=120)
        assert p.exitcode == 0
    found = request_ids(tmp_path)
    expected = {f"r{w * 100_000 + i}" for w in (1, 2) for i in range(n)}
    assert len(found) == 2 * n and set(found) == expected


def test_a_writer_still_bounds_its_own_files_and_prunes_dead_writers(tmp_path):
    for part in range(1, 6):  # left by a process that is gone (pid 2**22 + 1 is beyond pid_max)
        (tmp_path / f"responses-20250101T000000-{2**22 + 1}-{part:05d}.jsonl").write_text("{}\n")
    log = ResponseLog(tmp_path, file_mb=0.0005, max_files=3)
    for i in range(100):
        assert log.write(record(i))
    log.close()
    mine = sorted(tmp_path.glob(f"{log.prefix}-*.jsonl"))
    assert len(mine) == 3 and len(list(tmp_path.glob("*.jsonl"))) == 6  # 3 own + the 3 newest orphans
