import subprocess
import sys
import time

import psutil

from benchmarks.catalogue import catalogue_bench
from benchmarks.serve_bench import _cpu_by_process, checks, report


def test_catalogue_bench_compares_every_index_kind_against_exact():
    rows = catalogue_bench([3000], dim=16, n_queries=40, k_queries=5)
    kinds = [r["index"] for r in rows]
    assert kinds[0] == "flat" and {"ivf", "ivfpq", "hnsw"} <= set(kinds)
    assert rows[0]["recall@50"] == 1.0 and rows[0]["speedup_vs_exact"] == 1.0
    for r in rows:
        assert 0.0 < r["recall@50"] <= 1.0 and r["search_ms_per_request"] > 0
    ivfpq = [r for r in rows if r["index"] == "ivfpq"]
    widest = max(ivfpq, key=lambda r: int(r["setting"].split()[1].split("/")[0]))
    assert widest["recall@50"] >= 0.9  # a sixth of the lists, re-scored exactly
    text = report({"tiny": False, "command": "x", "date": "d", "machine": "m", "k_queries": 5,
                   "catalogue": rows})
    assert "| 3,000 | ivfpq |" in text
    assert checks({"catalogue": rows}) == []  # the 1M bar is judged only at 1M items


def test_cpu_by_process_counts_the_service_workers_below_the_root_process():
    """serve_bench's CPU per request sums the service's whole process tree (bentoml serve → workers)."""
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.4: pass\ntime.sleep(30)"
    root = subprocess.Popen(["sh", "-c", f'"{sys.executable}" -c "$BURN" & wait'], env={"BURN": burn})
    try:
        deadline = time.monotonic() + 20
        while sum(_cpu_by_process(root.pid).values()) < 0.4 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert 0.4 <= sum(_cpu_by_process(root.pid).values()) < 5  # the child's burn, seen via its parent
    finally:
        for child in psutil.Process(root.pid).children(recursive=True):
            child.kill()
        root.kill()
        root.wait()
