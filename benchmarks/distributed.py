"""torchrun with 2 processes against 1 process on a real log: does data-parallel training reach the same
validation Recall@50, and what does it cost?

    python -m benchmarks.scale --logs nowplaying-1M --features-only     # its training set, if not there yet
    python -m benchmarks.distributed                                     # 1 process × 3 seeds, 2 processes × 1

Every run trains GemiRec (the `long` preset, as the flow and benchmarks.scale do) for the same fixed number of
epochs (`--epochs`, warm-up `--warmup` of them), with early stopping and the time budget off, so both sides
see the same amount of data; one process uses 2 torch threads, each of the 2 processes 1 (the same 2 cores).
The global batch is the preset's in both (model/training/distributed.py splits it over the ranks). The
1-process seeds give the spread that the 2-process result is judged against: it passes when its validation
Recall@50 is within one std (ddof 1) of the 1-process mean. Each run is cached in
``runs/distributed/<name>/<run>/`` (run.json + measured.json), so a stopped benchmark resumes; the report goes
to ``benchmarks/results/distributed.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from benchmarks.machine import cpu_model
from benchmarks.process_tree import run_measured

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
DEFAULT_FOLDER = ROOT / "runs" / "scale" / "nowplaying-1M" / "training_set"


def settings(seed: int, epochs: int, warmup: int, threads: int, batch_size: int | None = None) -> list[str]:
    pairs = {**({"train.batch_size": batch_size} if batch_size else {}),
             "train.seed": seed, "train.threads": threads, "train.max_epochs": epochs, "train.min_epochs": epochs,
             "train.patience": 1000, "train.max_time_s": 1e9, "gemirec.warmup_epochs": warmup,
             "gemirec.min_warmup_epochs": warmup}
    return [arg for k, v in pairs.items() for arg in ("--set", f"{k}={v}")]


def run_one(folder: Path, work: Path, processes: int, seed: int, epochs: int, warmup: int,
            batch_size: int | None = None) -> dict:
    """One training run (cached): `processes` 1 runs distributed_train directly, more run it under torchrun."""
    out = work / f"p{processes}-s{seed}"
    cached = out / "measured.json"
    if cached.exists() and (out / "run.json").exists():
        return json.loads(cached.read_text())
    out.mkdir(parents=True, exist_ok=True)
    train = ["-m", "model.training.distributed_train", "--folder", str(folder), "--preset", "long",
             "--model", "gemirec", *settings(seed, epochs, warmup, 2 // processes, batch_size), "--out", str(out)]
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    env.update(OMP_NUM_THREADS=str(2 // processes), PYTHONWARNINGS="ignore")
    if processes > 1:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
                   str(processes), *train]
    else:
        command = [sys.executable, *train]
    print(f"[distributed] {processes} process(es), seed {seed} ...", flush=True)
    done = run_measured(command, out.with_suffix(".log"), ROOT, env)
    if done.returncode != 0:
        raise SystemExit(f"{processes} process(es), seed {seed} failed: see {out.with_suffix('.log')}")
    run = json.loads((out / "run.json").read_text())
    row = {"processes": processes, "seed": seed, "seconds": done.seconds, "cpu_s": done.cpu_s,
           "peak_rss_gb": done.peak_rss_gb, "epochs": run["epochs"], "train_wall_s": round(run["wall_seconds"], 1),
           "val_recall@50": run["metrics"]["val"]["recall@50"], "test_recall@50": run["metrics"]["test"]["recall@50"],
           "final_train_loss": run["final_train_loss"]}
    cached.write_text(json.dumps(row, indent=1))
    print(f"[distributed] {processes} process(es), seed {seed}: val R@50 {row['val_recall@50']:.4f}, "
          f"{done.seconds:.0f} s, {done.peak_rss_gb:.2f} GB", flush=True)
    return row


def verdict(rows: list[dict]) -> dict:
    one = [r["val_recall@50"] for r in rows if r["processes"] == 1]
    two = [r["val_recall@50"] for r in rows if r["processes"] == 2]
    if len(one) < 2 or not two:
        return {}
    mean, std = statistics.mean(one), statistics.stdev(one)
    gap = statistics.mean(two) - mean
    median_s = {p: statistics.median(r["train_wall_s"] for r in rows if r["processes"] == p) for p in (1, 2)}
    return {"one_mean": mean, "one_std": std, "two_mean": statistics.mean(two), "gap": gap,
            "gap_in_stds": gap / std if std else None, "within_one_std": abs(gap) <= std,
            "speedup_2_over_1": round(median_s[1] / median_s[2], 2)}


def markdown(report: dict) -> str:
    v = report["verdict"]
    lines = ["# torchrun: 2 processes against 1 on a real log", "",
             f"`{report['command']}`, commit {report['commit']}, {report['machine']}. Training set "
             f"`{report['folder']}` ({report['events']:,} events). GemiRec, `long` preset, {report['epochs']} "
             f"epochs ({report['warmup']} of warm-up), no early stopping; 1 process × 2 threads against 2 "
             f"processes × 1 thread, same global batch ({report.get('batch_size', 64)}). Peak RSS: the whole "
             "process tree.", "",
             "| processes | seed | val R@50 | test R@50 | final train loss | training s | whole run s | cpu s "
             "| peak RSS GB |", "|---|---|---|---|---|---|---|---|---|"]
    for r in report["rows"]:
        lines.append(f"| {r['processes']} | {r['seed']} | {100 * r['val_recall@50']:.2f} | "
                     f"{100 * r['test_recall@50']:.2f} | {r['final_train_loss']:.3f} | {r['train_wall_s']} | "
                     f"{r['seconds']} | {r['cpu_s']} | {r['peak_rss_gb']} |")
    if v:
        lines += ["", f"1 process: validation R@50 {100 * v['one_mean']:.2f} ± {100 * v['one_std']:.2f} (mean ± std "
                      f"over seeds, ddof 1). 2 processes: {100 * v['two_mean']:.2f}, "
                      f"{100 * v['gap']:+.2f} points = {v['gap_in_stds']:+.2f} std. Within one seed's std: "
                      f"**{'yes' if v['within_one_std'] else 'no'}**. Training time, 1 process / 2 processes "
                      f"(medians): {v['speedup_2_over_1']} ×."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--folder", type=Path, default=DEFAULT_FOLDER, help="a saved training set (events.parquet ...)")
    p.add_argument("--seeds", default="0,1,2", help="1-process seeds (the spread)")
    p.add_argument("--two-seeds", default="0", help="2-process seeds")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=None, help="global batch (default: the preset's 64)")
    args = p.parse_args(argv)
    if not (args.folder / "events.parquet").exists():
        raise SystemExit(f"{args.folder} has no events.parquet: build it first (see this module's docstring)")
    work = ROOT / "runs" / "distributed" / (f"{args.folder.parent.name}-e{args.epochs}-w{args.warmup}"
                                            f"-b{args.batch_size or 'preset'}")
    rows = [run_one(args.folder, work, 1, int(s), args.epochs, args.warmup, args.batch_size)
            for s in args.seeds.split(",")]
    rows += [run_one(args.folder, work, 2, int(s), args.epochs, args.warmup, args.batch_size)
             for s in args.two_seeds.split(",")]
    import pyarrow.parquet as pq

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    report = {"command": "python -m benchmarks.distributed " + " ".join(argv if argv is not None else sys.argv[1:]),
              "commit": commit, "machine": f"{cpu_model()}, {os.cpu_count()} cores",
              "folder": str(args.folder.relative_to(ROOT) if args.folder.is_relative_to(ROOT) else args.folder),
              "events": pq.ParquetFile(args.folder / "events.parquet").metadata.num_rows,
              "epochs": args.epochs, "warmup": args.warmup, "batch_size": args.batch_size or "the preset's",
              "rows": rows, "verdict": verdict(rows)}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "distributed.json").write_text(json.dumps(report, indent=1))
    (RESULTS / "distributed.md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
