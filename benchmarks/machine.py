"""What machine a benchmark ran on: timings from different CPUs are not comparable."""

from __future__ import annotations


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return "unknown CPU"
