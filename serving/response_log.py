"""The response log writer: append-only JSON lines, one per response (the contract monitoring/logs.py reads).

A log line is a by-product of an answer, never a condition for it: a write that fails (full disk, a folder
that vanished or turned read-only, a descriptor closed under us) is counted, reported (`status()`, which
/health shows, and the Prometheus counter ``gemirec_response_log_errors_total``) and warned about at most
once a minute, and the caller carries on. The next write starts from scratch (a fresh file), so the log
recovers by itself as soon as the cause is gone.

Each writer owns its files: ``responses-<UTC start>-<pid>-<random token>-<part>.jsonl``. The token makes
the prefix unique even when two workers start in the same second with recycled pids. A writer rotates
past ``file_mb`` and then deletes only its own oldest files beyond ``max_files``: with several workers,
one never unlinks a file another still writes (which silently lost lines the monitor then never saw).
Files left by writers whose process is gone are pruned too, oldest first, once the folder holds more
than ``max_files`` of them. The disk bound is about ``file_mb × max_files`` per live worker.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
import secrets
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

log = logging.getLogger(__name__)

WARN_EVERY_S = 60.0
_NAME = re.compile(r"responses-\d{8}T\d{6}-(\d+)(?:-[0-9a-f]{8})?-\d+\.jsonl")  # older names had no token
_counter = None  # one per process: prometheus_client refuses to register a name twice


def _error_counter():
    """The Prometheus counter, created on first use: BentoML sets PROMETHEUS_MULTIPROC_DIR in each worker
    after importing the service module, and a client imported before that would count in the wrong place."""
    global _counter
    if _counter is None:
        try:
            from prometheus_client import Counter

            _counter = Counter("gemirec_response_log_errors", "Response-log writes that failed (the "
                               "answers still went out)")
        except Exception:  # noqa: BLE001 - metrics are optional; the count in status() stays
            log.warning("no Prometheus counter for response-log errors", exc_info=True)
            _counter = False
    return _counter or None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


class ResponseLog:
    def __init__(self, folder: Path, file_mb: float = 16.0, max_files: int = 32):
        self.folder = Path(folder)
        with contextlib.suppress(OSError):  # a folder we cannot create yet is a write error later
            self.folder.mkdir(parents=True, exist_ok=True)
        self.max_bytes = int(file_mb * 2**20)
        self.max_files = max(2, max_files)
        self.prefix = f"responses-{datetime.now(UTC):%Y%m%dT%H%M%S}-{os.getpid()}-{secrets.token_hex(4)}"
        self.part = 0
        self.written = 0
        self.errors = 0
        self.last_error: dict | None = None
        self._fd: int | None = None
        self._size = 0
        self._warned_at = -WARN_EVERY_S
        self._unwarned = 0
        self._lock = threading.Lock()  # responses are written from several request threads
        self._counter = _error_counter()

    def write(self, record: dict) -> bool:
        """Append one line; False (and counted) when it could not be written. Never raises an OSError."""
        data = (json.dumps(record, separators=(",", ":")) + "\n").encode()
        with self._lock:
            for attempt in (1, 2):
                fresh = self._fd is None or self._size + len(data) > self.max_bytes
                try:
                    if fresh:
                        self._open(len(data))
                    self._append(data)
                except (OSError, ValueError) as e:
                    self._drop()
                    if fresh or attempt == 2:  # a fresh file failed too: the cause is not our old handle
                        self._failed(e)
                        return False
                    continue  # a stale handle (closed, its file gone bad): one more try on a new file
                self.written += 1
                return True
        return False

    def _append(self, data: bytes) -> None:
        if os.fstat(self._fd).st_nlink == 0:  # our file was deleted (or its folder replaced): writes to it
            raise OSError(errno.ENOENT, "the open log file was deleted")  # would vanish unseen
        # one unbuffered write per line: nothing half-written lingers in a buffer after a failure
        done = os.write(self._fd, data)
        self._size += done
        if done != len(data):
            raise OSError(errno.ENOSPC, f"short write ({done} of {len(data)} bytes)")

    def _open(self, n_bytes: int) -> None:
        """Open the next part when the line does not fit the current one (rotation), else reopen the
        current part after a failure (no empty file per failed write). The old handle is closed only once
        the new one is open."""
        rotate = self.part == 0 or self._size + n_bytes > self.max_bytes
        part = self.part + 1 if rotate else self.part
        fd = os.open(self.folder / f"{self.prefix}-{part:05d}.jsonl", os.O_WRONLY | os.O_CREAT | os.O_APPEND,
                     0o644)
        self._drop()
        self._fd, self._size, self.part = fd, os.fstat(fd).st_size, part
        if rotate:
            self._prune()

    def _prune(self) -> None:
        try:
            files = sorted(self.folder.glob("responses-*.jsonl"))
        except OSError:
            return
        mine = [f for f in files if f.name.startswith(self.prefix + "-")]
        doomed = mine[: max(0, len(mine) - self.max_files)]
        orphans = [f for f in files if (m := _NAME.fullmatch(f.name)) and not f.name.startswith(self.prefix)
                   and int(m.group(1)) != os.getpid() and not _pid_alive(int(m.group(1)))]
        doomed += orphans[: max(0, len(orphans) - self.max_files)]
        for old in doomed:
            with contextlib.suppress(FileNotFoundError):
                old.unlink()

    def _failed(self, e: Exception) -> None:
        """Count and report; warn at most once a minute. The handle is already dropped: the next write
        opens a fresh file, which is how the log recovers once the cause is gone."""
        self.errors += 1
        now = time.monotonic()
        self.last_error = {"at": datetime.now(UTC).isoformat(timespec="seconds"),
                           "error": f"{type(e).__name__}: {e}"}
        if self._counter is not None:
            self._counter.inc()
        if now - self._warned_at >= WARN_EVERY_S:
            more = f" ({self._unwarned} more since the last warning)" if self._unwarned else ""
            log.warning("response log %s: write failed, answers still go out: %s%s", self.folder,
                        self.last_error["error"], more)
            self._warned_at, self._unwarned = now, 0
        else:
            self._unwarned += 1

    def _drop(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None

    def status(self) -> dict:
        return {"log_written": self.written, "log_errors": self.errors, "last_log_error": self.last_error}

    def close(self) -> None:
        with self._lock:
            self._drop()
