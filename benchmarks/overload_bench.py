"""Overload: 64 clients each sending the worst request the API accepts (n = 500, k = 32, a 1,000-item
history) to a real `bentoml serve`, with the admission limit off (every request queues, the old setting)
and on (GEMIREC_MAX_CONCURRENCY: past it a 429 at once). Latency is measured at the client.

    python -m benchmarks.overload_bench                         # trains the demo model once (≤ 60 s)
    python -m benchmarks.overload_bench --folder runs/sim/model --limits 0,32,16

Writes benchmarks/results/overload.md (+ .json).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.machine import cpu_model

ROOT = Path(__file__).resolve().parent.parent
log = logging.getLogger("overload_bench")


def model_folder(out: Path, budget_s: float) -> Path:
    """The demo's model (GemiRec on the simulator), reused when a verified folder exists."""
    from model.persistence.saved import ModelFolderError, verify_folder

    folder = out / "model"
    try:
        verify_folder(folder)
        return folder
    except ModelFolderError:
        pass
    from features.datasets import load_dataset
    from model.config import load_config
    from model.training.pipeline import train_model

    inter = load_dataset("simulator")
    cfg = load_config("simulator", ["model=gemirec", f"train.max_time_s={budget_s}", "train.threads=1"])
    return train_model(inter.events, inter.items, cfg, out, progress=False).folder


def worst_request(folder: Path, n: int, k: int, history: int, seed: int = 0) -> dict:
    import pandas as pd

    items = pd.read_parquet(folder / "items.parquet")["item_id"].to_numpy()
    rng = np.random.default_rng(seed)
    return {"history": [int(i) for i in rng.choice(items, size=history)], "n": n, "k": k}


async def load(url: str, body: dict, clients: int, requests: int, backoff_ms: float = 0) -> dict:
    """A closed loop: each client sends its next request when the last is answered, `backoff_ms` later
    when it was refused (what a polite client does; 0 = retry at once, a retry storm)."""
    import httpx

    results: list[tuple[int, float]] = []
    left = requests

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal left
        while left > 0:
            left -= 1
            started = time.perf_counter()
            try:
                status = (await http.post(f"{url}/recommend", json=body)).status_code
            except httpx.HTTPError:
                status = 0  # connection refused, reset or timed out at the client
            results.append((status, (time.perf_counter() - started) * 1000))
            if status in (429, 503) and backoff_ms:
                await asyncio.sleep(backoff_ms / 1000)

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=120, limits=limits) as http:
        started = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        wall = time.perf_counter() - started
    codes = np.array([s for s, _ in results])
    ms = np.array([m for _, m in results])

    def pct(mask) -> dict:
        a = ms[mask] if mask.any() else np.zeros(1)
        return {"n": int(mask.sum()), "p50": float(np.percentile(a, 50)), "p99": float(np.percentile(a, 99))}

    return {"ok": pct(codes == 200), "shed": pct(codes == 429), "other": pct((codes != 200) & (codes != 429)),
            "codes": {str(c): int((codes == c).sum()) for c in np.unique(codes)},
            "answered_per_s": float((codes == 200).sum() / wall), "wall_s": wall}


def run(folder: Path, limit: int, args) -> dict:
    from serving.launch import serve

    body = worst_request(folder, args.n, args.k, args.history)
    with tempfile.TemporaryDirectory() as logs:
        env = {"GEMIREC_MODEL_FOLDER": str(folder), "GEMIREC_LOG_DIR": logs,
               "GEMIREC_MAX_CONCURRENCY": str(limit), "GEMIREC_TIMEOUT_S": str(args.timeout_s)}
        with serve(env) as server:
            asyncio.run(load(server.url, body, args.clients, args.warmup, args.backoff_ms))
            return asyncio.run(load(server.url, body, args.clients, args.requests, args.backoff_ms))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.overload_bench")
    p.add_argument("--folder", type=Path, default=None, help="model folder (default: train the demo model)")
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "overload_bench")
    p.add_argument("--train-budget-s", type=float, default=60)
    p.add_argument("--limits", default="0,32", help="GEMIREC_MAX_CONCURRENCY values (0 = unbounded)")
    p.add_argument("--clients", type=int, default=64)
    p.add_argument("--requests", type=int, default=640)
    p.add_argument("--warmup", type=int, default=64)
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--k", type=int, default=32)
    p.add_argument("--history", type=int, default=1000)
    p.add_argument("--timeout-s", type=float, default=10)
    p.add_argument("--backoff-ms", type=float, default=0, help="a refused client waits this long (0: no wait)")
    p.add_argument("--report", type=Path, default=ROOT / "benchmarks" / "results" / "overload.md")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request would load the client
    folder = args.folder or model_folder(args.out, args.train_budget_s)
    rows = {int(limit): run(folder, int(limit), args) for limit in args.limits.split(",")}
    lines = [f"# Overload: {args.clients} clients, worst-case /recommend (n = {args.n}, k = {args.k}, "
             f"{args.history}-item history)", "",
             f"`python -m benchmarks.overload_bench {' '.join(sys.argv[1:] if argv is None else argv)}`"
             .replace(" `", "`"),
             f"on {cpu_model()}, one worker, {args.requests} requests per row after {args.warmup} warm-up, "
             f"a refused client waits {args.backoff_ms:g} ms; "
             f"model `{folder}`.", "",
             "| max_concurrency | 200 | 200 p50 ms | 200 p99 ms | 429 | 429 p99 ms | other | answered/s |",
             "|---|---|---|---|---|---|---|---|"]
    for limit, r in rows.items():
        lines.append(f"| {limit or 'off'} | {r['ok']['n']} | {r['ok']['p50']:.0f} | {r['ok']['p99']:.0f} | "
                     f"{r['shed']['n']} | {r['shed']['p99']:.1f} | {r['other']['n']} | "
                     f"{r['answered_per_s']:.1f} |")
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text("\n".join(lines) + "\n")
    args.report.with_suffix(".json").write_text(json.dumps({str(k): v for k, v in rows.items()}, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
