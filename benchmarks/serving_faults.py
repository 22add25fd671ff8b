"""Serving under faults, measured on a real `bentoml serve` (issue 25's "must show"):

    python -m benchmarks.serving_faults            # all three; writes benchmarks/results/serving-faults.md

1. log-fault: a 1,000-request replay during which the response-log folder is replaced by a plain file
   (unwritable, even for root) and later restored: errors seen by the client, /health's log fault.
2. two-workers: GEMIREC_WORKERS=2, 10,000 requests over fresh connections, small rotating log files:
   lines the monitor's reader (monitoring/logs.py) finds vs answers the clients got.
3. metrics: /metrics size before and after 500 GETs to random paths.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import numpy as np

from benchmarks.overload_bench import model_folder

ROOT = Path(__file__).resolve().parent.parent


def _body(folder: Path, rng: np.random.Generator) -> dict:
    import pandas as pd

    items = pd.read_parquet(folder / "items.parquet")["item_id"].to_numpy()
    return {"history": [int(i) for i in rng.choice(items, size=20)], "n": 10}


async def _replay(url: str, bodies: list[dict], clients: int, fresh: bool, on_progress=None) -> list[dict]:
    """POST every body; `fresh`: one connection per request (so several workers share the load)."""
    out: list[dict] = []
    queue = list(enumerate(bodies))

    # fresh: no keep-alive, so each request is accepted anew by whichever worker takes it
    limits = httpx.Limits(max_keepalive_connections=0) if fresh else httpx.Limits()

    async def client() -> None:
        async with httpx.AsyncClient(timeout=60, limits=limits) as http:
            while queue:
                i, body = queue.pop()
                try:
                    r = await http.post(f"{url}/recommend", json=body)
                    out.append({"status": r.status_code, "id": r.json().get("request_id")})
                except httpx.HTTPError as e:
                    out.append({"status": 0, "id": None, "error": str(e)})
                if on_progress is not None:
                    await on_progress(len(out))

    await asyncio.gather(*(client() for _ in range(clients)))
    return out


def log_fault(folder: Path, n: int = 1000) -> dict:
    from serving.launch import serve

    rng = np.random.default_rng(0)
    bodies = [_body(folder, rng) for _ in range(n)]
    with tempfile.TemporaryDirectory() as tmp:
        logs = Path(tmp) / "logs"
        env = {"GEMIREC_MODEL_FOLDER": str(folder), "GEMIREC_LOG_DIR": str(logs), "GEMIREC_LOG_FILE_MB": "0.05"}
        with serve(env) as server:
            health: dict = {}

            async def fault(done: int) -> None:
                if done == n // 3 and logs.is_dir():  # a third in: the folder becomes unwritable
                    shutil.rmtree(logs)
                    logs.write_text("a file where the log folder was")
                elif done == 2 * n // 3 and logs.is_file():  # two thirds in: health, then restore
                    async with httpx.AsyncClient() as http:
                        health.update((await http.get(f"{server.url}/health")).json())
                    logs.unlink()
                    logs.mkdir()

            results = asyncio.run(_replay(server.url, bodies, 8, False, fault))
            time.sleep(0.5)
            after = httpx.get(f"{server.url}/health").json()
    codes = [r["status"] for r in results]
    return {"requests": n, "ok": codes.count(200), "errors": n - codes.count(200),
            "health_during": {k: health.get(k) for k in ("ready", "log_errors", "last_log_error")},
            "health_after": {k: after.get(k) for k in ("log_errors", "log_written")}}


def two_workers(folder: Path, n: int = 10_000) -> dict:
    from monitoring.logs import read_window
    from serving.launch import serve

    rng = np.random.default_rng(1)
    bodies = [_body(folder, rng) for _ in range(n)]
    with tempfile.TemporaryDirectory() as tmp:
        logs = Path(tmp) / "logs"
        env = {"GEMIREC_MODEL_FOLDER": str(folder), "GEMIREC_LOG_DIR": str(logs), "GEMIREC_WORKERS": "2",
               "GEMIREC_LOG_FILE_MB": "0.05", "GEMIREC_LOG_FILES": "400"}
        with serve(env) as server:
            started = time.perf_counter()
            results = asyncio.run(_replay(server.url, bodies, 16, True))
            wall = time.perf_counter() - started
        window = read_window(logs)
        files = sorted(logs.glob("*.jsonl"))
        writers = {f.name.rsplit("-", 1)[0] for f in files}
        logged = set()
        for f in files:
            logged |= {json.loads(line)["request_id"] for line in f.read_text().splitlines() if line}
    answered = {r["id"] for r in results if r["status"] == 200}
    return {"requests": n, "answered": len(answered), "read_by_monitor": window.n_requests,
            "corrupt": window.n_corrupt, "answered_not_logged": len(answered - logged),
            "log_files": len(files), "writers": len(writers), "wall_s": round(wall, 1)}


def metrics_growth(folder: Path, n: int = 500) -> dict:
    from serving.launch import serve

    with tempfile.TemporaryDirectory() as tmp:
        env = {"GEMIREC_MODEL_FOLDER": str(folder), "GEMIREC_LOG_DIR": str(Path(tmp) / "logs")}
        with serve(env) as server, httpx.Client(timeout=30) as http:
            http.get(f"{server.url}/warm-up-unknown-path")
            before = len(http.get(f"{server.url}/metrics").content)
            codes = [http.get(f"{server.url}/{uuid.uuid4().hex}").status_code for _ in range(n)]
            after = len(http.get(f"{server.url}/metrics").content)
    return {"random_gets": n, "404s": codes.count(404), "metrics_bytes_before": before,
            "metrics_bytes_after": after, "change_pct": round(100 * (after - before) / before, 3)}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.serving_faults")
    p.add_argument("which", nargs="*", default=["log-fault", "two-workers", "metrics"])
    p.add_argument("--folder", type=Path, default=None, help="model folder (default: the overload model)")
    p.add_argument("--report", type=Path, default=ROOT / "benchmarks" / "results" / "serving-faults.md")
    args = p.parse_args(argv)
    folder = args.folder or model_folder(ROOT / "runs" / "overload_bench", 60)
    runs = {"log-fault": log_fault, "two-workers": two_workers, "metrics": metrics_growth}
    results = {name: runs[name](folder) for name in args.which}
    lines = ["# Serving under faults (a real `bentoml serve`, one machine)", "",
             f"`python -m benchmarks.serving_faults {' '.join(args.which)}`, model `{folder.name}`", ""]
    for name, r in results.items():
        lines += [f"## {name}", "", "```json", json.dumps(r, indent=1), "```", ""]
    args.report.write_text("\n".join(lines))
    args.report.with_suffix(".json").write_text(json.dumps(results, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
