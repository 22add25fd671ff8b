"""Run a command as a child process and measure it the way every scale benchmark reports: wall time, the CPU
seconds of the child and everything it waited for, and the peak RSS of the whole process tree."""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

SAMPLE_S = 0.1


@dataclass
class Measured:
    returncode: int
    seconds: float
    cpu_s: float
    peak_rss_gb: float


def tree_rss(process: psutil.Process) -> int:
    total = 0
    for p in [process, *process.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def run_measured(command: list[str], log: Path, cwd: Path, env: dict[str, str]) -> Measured:
    """`command` with stdout and stderr into `log`, its tree's RSS sampled every SAMPLE_S seconds (torchrun's
    workers are children of its agent, so a tree, not one process, is what holds the memory)."""
    started = time.perf_counter()
    with open(log, "w") as out:
        child = subprocess.Popen(command, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=env)
        process, peak = psutil.Process(child.pid), 0
        while True:
            # wait4, not poll: its rusage gives the CPU time of the child and the processes it waited for,
            # which on a machine shared with other jobs says more than the wall time
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                code = os.waitstatus_to_exitcode(status)
                break
            try:
                peak = max(peak, tree_rss(process))
            except psutil.NoSuchProcess:
                pass
            time.sleep(SAMPLE_S)
    return Measured(code, round(time.perf_counter() - started, 2), round(usage.ru_utime + usage.ru_stime, 2),
                    round(peak / 1e9, 3))
