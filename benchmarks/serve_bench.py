"""Serving benchmark: the real service under a bounded load, its in-process compute floor, and FAISS indexes
on synthetic catalogues. Writes benchmarks/results/serving.md (+ .json).

    python -m benchmarks.serve_bench                 # amazon-video-sasrec: trains once (≤ --train-budget-s),
                                                     # reuses runs/serve_bench/<dataset>/model afterwards
    python -m benchmarks.serve_bench --tiny          # smoke run: simulator-tiny, small loads, 10k/100k items
    python -m benchmarks.serve_bench --catalogue 10000,100000,1000000 --skip-service

Load: a closed loop of `concurrency` clients in this process (the service runs in its own process group),
each POSTing /recommend with a real user's history, k = 4, n = 50; latency is measured at the client, so it
includes HTTP. The floor is the service's model step in-process for one request (user tower + generator +
K+1 FAISS searches + merge + attribution), the part no serving framework can remove.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.catalogue import catalogue_bench
from benchmarks.machine import cpu_model
from benchmarks.serve_report import checks, report  # noqa: F401  (checks: also the tests')

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
log = logging.getLogger("serve_bench")


# ---------------------------------------------------------------- model and traffic


def model_folder(dataset: str, preset: str, budget_s: float, out: Path, epochs: int | None,
                 extra: tuple[str, ...] = ()) -> Path:
    """The benchmark model: reused when a verified folder exists, else trained within the time budget."""
    from model.persistence.saved import ModelFolderError, verify_folder

    folder = out / "model"
    try:
        verify_folder(folder)
        log.info("reusing %s", folder)
        return folder
    except ModelFolderError:
        pass
    from features.datasets import load_dataset
    from model.config import load_config
    from model.training.pipeline import train_model

    overrides = ["model=gemirec", f"train.max_time_s={budget_s}", f"train.threads={os.cpu_count() or 1}"]
    if epochs:
        overrides.append(f"train.max_epochs={epochs}")
    overrides += extra
    inter = load_dataset(dataset)
    started = time.perf_counter()
    result = train_model(inter.events, inter.items, load_config(preset, overrides), out, progress=False)
    log.info("trained %s in %.0f s: val recall@50 %.4f", dataset, time.perf_counter() - started,
             result.metrics["val"]["recall@50"])
    return result.folder


def user_histories(dataset: str, maxlen: int, n_users: int, seed: int = 0) -> list[list[int]]:
    """The last `maxlen` items of randomly chosen users, oldest first (what a client would send)."""
    from features.datasets import load_dataset

    ev = load_dataset(dataset).events.sort_values(["user_id", "event_timestamp"], kind="stable")
    groups = ev.groupby("user_id", sort=False)["item_id"].apply(lambda s: s.to_numpy()[-maxlen:].tolist())
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(groups), size=min(n_users, len(groups)), replace=False)
    return [groups.iloc[i] for i in pick]


def registered(folder: Path, home: Path, name: str) -> str:
    from serving import registry

    reg = registry.Registry(home, name)
    version = registry.register(reg, folder, {"use": "serve_bench"}, {})
    registry.promote(reg, version.tag, "serve_bench")
    return version.tag


# ---------------------------------------------------------------- measurements


def percentiles(ms: list[float]) -> dict:
    a = np.asarray(ms) if ms else np.zeros(1)
    return {"p50": float(np.percentile(a, 50)), "p95": float(np.percentile(a, 95)),
            "p99": float(np.percentile(a, 99))}


def compute_floor(folder: Path, histories: list[list[int]], n: int, k: int, reps: int) -> dict:
    """In-process time of the service's model step for one request, and of the whole request path."""
    import torch

    from model.faiss_index import set_threads
    from serving.engine import Engine
    from serving.runtime import ModelHolder, ServingConfig
    from serving.schemas import RecommendRequest

    torch.set_num_threads(1)  # what one service worker uses
    set_threads(1)
    holder = ModelHolder(ServingConfig(model_folder=folder, log_dir=None))
    holder.start()
    engine = Engine(holder)
    compute, whole = [], []
    for i in range(reps + 20):
        request = RecommendRequest(history=histories[i % len(histories)], n=n, k=k, unknown_items="drop")
        t0 = time.perf_counter()
        prepared = engine.prepare(request)
        t1 = time.perf_counter()
        computed = engine.compute([prepared])[0]
        t2 = time.perf_counter()
        engine.answer(prepared, computed)
        t3 = time.perf_counter()
        if i >= 20:  # warm-up excluded
            compute.append((t2 - t1) * 1000)
            whole.append((t3 - t0) * 1000)
    batch = [engine.prepare(RecommendRequest(history=h, n=n, k=k, unknown_items="drop"))
             for h in histories[:8]]
    t0, cpu0 = time.perf_counter(), time.process_time()  # CPU time too: wall time counts a busy machine
    for _ in range(max(1, reps // 8)):
        engine.compute(batch)
    per_request_in_batch8 = (time.perf_counter() - t0) * 1000 / (8 * max(1, reps // 8))
    cpu_in_batch8 = (time.process_time() - cpu0) * 1000 / (8 * max(1, reps // 8))
    return {"compute": percentiles(compute), "in_process_request": percentiles(whole),
            "compute_per_request_batch8_ms": per_request_in_batch8,
            "compute_cpu_per_request_batch8_ms": cpu_in_batch8,
            "search_paths": _search_paths(engine, holder, histories, n, k, reps)}


def _search_paths(engine, holder, histories, n: int, k: int, reps: int) -> dict | None:
    """The model step with the serving path (one product for top lists + partitions) against FAISS search
    + a separate partition (what evaluation runs), interleaved request by request so load drifts hit both
    alike. Medians in ms, one request and per request in a batch of 8."""
    from serving.schemas import RecommendRequest

    model = holder.current.loaded.model
    pinned = getattr(model, "pinned_item_matrix", None)
    if pinned is None:
        return None
    out: dict[str, dict[str, list[float]]] = {"one product": {"1": [], "8": []},
                                               "faiss + partition": {"1": [], "8": []}}
    try:
        for i in range(max(20, reps // 4)):
            for name, matrix in (("one product", pinned), ("faiss + partition", None)):
                model.pin_item_matrix(matrix)
                for size in (1, 8):
                    batch = [engine.prepare(RecommendRequest(history=histories[(i + j) % len(histories)], n=n,
                                                             k=k, unknown_items="drop")) for j in range(size)]
                    t0 = time.perf_counter()
                    engine.compute(batch)
                    out[name][str(size)].append((time.perf_counter() - t0) * 1000 / size)
    finally:
        model.pin_item_matrix(pinned)
    return {name: {size: float(np.median(v[5:])) for size, v in d.items()} for name, d in out.items()}


def _cpu_by_process(pid: int) -> dict[int, float]:
    """User + system CPU seconds of a process and of each of its descendants (the service's workers)."""
    import psutil

    root = psutil.Process(pid)
    out = {}
    for proc in [root, *root.children(recursive=True)]:
        try:
            t = proc.cpu_times()
            out[proc.pid] = t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return out


async def _drive(url: str, bodies: list[bytes], concurrency: int, n_requests: int,
                 server_pid: int | None = None, path: str = "/recommend", stagger_s: float = 0.0) -> dict:
    """`concurrency` clients in a closed loop, each on its own keep-alive connection; aiohttp, whose
    per-request cost is a fraction of httpx's, so that the client steals less of the 2 cores the service
    runs on. Client i opens its connection `i × stagger_s` after the first (0: all at once), which decides
    where several workers' accepts land. With `server_pid`, the CPU time the service and this client spent
    per request is measured too: on one machine they share its cores, so their sum per request bounds the
    throughput any concurrency can reach."""
    import aiohttp

    latencies: list[float] = []
    errors: dict[str, int] = {}
    next_request = iter(range(n_requests))
    headers = {"content-type": "application/json"}
    timeout = aiohttp.ClientTimeout(total=60)
    sessions = [aiohttp.ClientSession(url, connector=aiohttp.TCPConnector(limit=1), timeout=timeout)
                for _ in range(concurrency)]
    try:
        async def worker(session, start_s):
            await asyncio.sleep(start_s)
            for i in next_request:
                t0 = time.perf_counter()
                try:
                    async with session.post(path, data=bodies[i % len(bodies)], headers=headers) as r:
                        await r.read()
                        status = str(r.status)
                except (TimeoutError, aiohttp.ClientError) as e:
                    status = type(e).__name__
                latencies.append((time.perf_counter() - t0) * 1000)
                if status != "200":
                    errors[status] = errors.get(status, 0) + 1

        before = _cpu_by_process(server_pid) if server_pid else {}
        client_cpu = time.process_time()
        started = time.perf_counter()
        await asyncio.gather(*(worker(session, i * stagger_s) for i, session in enumerate(sessions)))
        elapsed = time.perf_counter() - started
        client_cpu = time.process_time() - client_cpu
        after = _cpu_by_process(server_pid) if server_pid else {}
    finally:
        await asyncio.gather(*(session.close() for session in sessions))
    cpu = {}
    if server_pid:
        spent = {pid: t - before.get(pid, 0.0) for pid, t in after.items()}
        server_cpu = sum(spent.values())
        cpu = {"client_cpu_ms_per_request": client_cpu * 1000 / n_requests,
               "server_cpu_ms_per_request": server_cpu * 1000 / n_requests,
               "cpu_busy_share": (client_cpu + server_cpu) / (elapsed * (os.cpu_count() or 1)),
               # with several workers: does the load spread? (keep-alive connections stay where accepted)
               "busiest_process_cpu_share": max(spent.values()) / server_cpu if server_cpu > 0 else None}
    return {"concurrency": concurrency, "stagger_ms": stagger_s * 1000, "requests": n_requests,
            "errors": sum(errors.values()),
            "error_kinds": errors, "throughput_rps": n_requests / elapsed, **percentiles(latencies), **cpu}


def load_test(folder: Path, histories, args, batch_max: int, workers: int = 1,
              levels: list[tuple[int, int, float]] | None = None) -> dict:
    """Start the service on the registered model, warm it up, then run each (concurrency, requests,
    stagger s) level; the framework probe too when batching is on."""
    from monitoring.logs import read_window
    from serving.launch import serve

    bodies = [json.dumps({"history": h, "n": args.n, "k": args.k, "unknown_items": "drop"}).encode()
              for h in histories]
    similar = [json.dumps({"item_id": h[-1], "n": 1}).encode() for h in histories if h]
    with tempfile.TemporaryDirectory(prefix="serve-bench-") as tmp:
        home, logs = Path(tmp) / "bentoml", Path(tmp) / "logs"
        tag = registered(folder, home, "gemirec-bench")
        env = {"BENTOML_HOME": str(home), "GEMIREC_REGISTRY_NAME": "gemirec-bench",
               "GEMIREC_LOG_DIR": str(logs), "GEMIREC_BATCH_MAX": str(batch_max),
               "GEMIREC_WORKERS": str(workers), "GEMIREC_RELOAD_S": "0"}
        plan = levels or [(c, n, 0.0) for c, n in zip(args.concurrency, args.requests)]
        levels = []
        with serve(env) as server:
            asyncio.run(_drive(server.url, bodies, 8, args.warmup))
            for c, n, stagger in plan:
                before = read_window(logs).n_requests
                result = asyncio.run(_drive(server.url, bodies, c, n, server.process.pid, stagger_s=stagger))
                window = read_window(logs)
                served = window.latency_ms[before:]  # the service's own time, from its response log
                # one file per worker: the newest lines are in order only with one
                result["server_p50_ms"] = float(np.median(served)) if len(served) and workers == 1 else None
                log.info("batch_max %d, c=%d: p50 %.2f p95 %.2f p99 %.2f ms, %.0f req/s, %d errors",
                         batch_max, c, result["p50"], result["p95"], result["p99"], result["throughput_rps"],
                         result["errors"])
                levels.append(result)
            framework = []
            if batch_max > 1 and workers == 1:  # the same server, almost no model work: what HTTP costs
                for c in (1, 8):
                    framework.append(asyncio.run(_drive(server.url, similar, c, args.requests[0],
                                                        server.process.pid, "/similar_items")))
    return {"batch_max": batch_max, "model_version": tag, "workers": workers, "levels": levels,
            "framework": framework}


def machine() -> str:
    return f"{os.cpu_count()} cores ({cpu_model()}), load average {os.getloadavg()[0]:.1f} at start"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="amazon-video-sasrec")
    p.add_argument("--preset", default="amazon")
    p.add_argument("--tiny", action="store_true", help="smoke run: simulator-tiny, small loads, 10k/100k")
    p.add_argument("--train-budget-s", type=float, default=900, help="wall-clock cap on training the model")
    p.add_argument("--out", type=Path, default=None, help="model run folder (runs/serve_bench/<dataset>)")
    p.add_argument("--train-overrides", default="", help="config overrides for the benchmark model, comma "
                   "separated (a short run that still reaches GemiRec's joint stage: latency needs its shapes, "
                   "not its accuracy)")
    p.add_argument("--n", type=int, default=50)
    p.add_argument("--k", type=int, default=4)
    p.add_argument("--concurrency", default="1,8,32")
    p.add_argument("--requests", default="2000,2000,10000", help="requests per concurrency level")
    p.add_argument("--warmup", type=int, default=300)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--spread-workers", type=int, default=2, help="then this many workers at c=1 and c=8, "
                   "clients connecting at once and --stagger-ms apart (0 = skip)")
    p.add_argument("--stagger-ms", type=float, default=250.0)
    p.add_argument("--batching", default="16,1", help="GEMIREC_BATCH_MAX values to compare (1 = off)")
    p.add_argument("--floor-reps", type=int, default=500)
    p.add_argument("--catalogue", default="10000,100000,1000000", help="synthetic sizes ('' = skip)")
    p.add_argument("--skip-service", action="store_true")
    p.add_argument("--report", type=Path, default=RESULTS / "serving.md")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per readiness poll otherwise
    if args.tiny:
        args.dataset, args.preset, args.warmup, args.floor_reps = "simulator-tiny", "tiny", 50, 200
        if args.requests == p.get_default("requests"):
            args.requests = "200,300,600"
        if args.catalogue == p.get_default("catalogue"):
            args.catalogue = "10000,100000"
    args.concurrency = [int(x) for x in args.concurrency.split(",")]
    args.requests = [int(x) for x in args.requests.split(",")]
    sizes = [int(x) for x in args.catalogue.split(",") if x]
    given = shlex.join(argv if argv is not None else sys.argv[1:])
    result = {"tiny": args.tiny, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "machine": machine(), "command": f"python -m benchmarks.serve_bench {given}".strip(),
              "k_queries": args.k + 1}
    if not args.skip_service:
        out = args.out or ROOT / "runs" / "serve_bench" / args.dataset
        folder = model_folder(args.dataset, args.preset, args.train_budget_s, out, 2 if args.tiny else None,
                              tuple(x for x in args.train_overrides.split(",") if x))
        manifest = json.loads((folder / "manifest.json").read_text())
        val = manifest["metrics"]["val"]["recall@50"]
        result["model"] = (f"{manifest['model']} on {args.dataset}, {manifest['n_items']:,} items, "
                           f"val recall@50 {val:.4f}; requests k = {args.k}, n = {args.n}")
        from model.config import Config

        maxlen = Config.from_dict(json.loads((folder / "config.json").read_text())).data.maxlen
        histories = user_histories(args.dataset, maxlen, 2000)
        result["floor"] = compute_floor(folder, histories, args.n, args.k, args.floor_reps)
        result["service"] = [load_test(folder, histories, args, int(b), args.workers)
                             for b in args.batching.split(",")]
        if args.spread_workers > 1:  # does a second worker take half the load? (keep-alive: where accepted)
            n = args.requests[0]
            plan = [(1, n, 0.0), (8, n, 0.0), (8, n, args.stagger_ms / 1000)]
            result["service"].append(load_test(folder, histories, args, 16, args.spread_workers, plan))
    if sizes:
        result["catalogue"] = catalogue_bench(sizes, 64, 200 if args.tiny else 1000, args.k + 1)
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(report(result))
    args.report.with_suffix(".json").write_text(json.dumps(result, indent=1))
    for name, ok in [] if args.tiny else checks(result):
        log.info("%s: %s", "PASS" if ok else "FAIL", name)
    log.info("wrote %s", args.report)


if __name__ == "__main__":
    main()
