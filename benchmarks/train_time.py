"""Training wall time and time to quality of GemiRec against ComiRec-SA, back to back in one process.

    python -m benchmarks.train_time --dataset ml-100k --threads 1
    python -m benchmarks.train_time --dataset simulator --set gemirec.tf_positions=0   # A/B a setting

The campaign's cached timings come from runs made weeks apart under different loads, so their ratio says
little. Here both models train one after the other, same process, same thread count, same config and
budget as the benchmark (its preset for the dataset), and the script prints each model's wall time,
epochs and seconds per epoch, and the ratios. Each model's per-epoch history (cumulative seconds since
training began, validation R@50) is stored, which gives time to quality (issue #23, decision 3): the
seconds until GemiRec's validation R@50 first reaches ComiRec-SA's best, against ComiRec-SA's whole
training time (bar ≤ 1.0 ×). Results are appended to `benchmarks/results/train_time.json`
and the table `train_time.md` is rebuilt from it; nothing is written to the campaign's cache.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import time
from pathlib import Path

import torch

from benchmarks.machine import cpu_model
from benchmarks.run import DATASET_PRESETS, RESULTS
from features.datasets import load_dataset
from model.config import load_config, replace
from model.sequences import SequenceData
from model.training.train import fit, make_model, seed_everything

# the six datasets of the campaign, each of which needs one back-to-back run with histories
CAMPAIGN = ["ml-100k", "lastfm-s3rec", "simulator", "amazon-beauty-s3rec", "amazon-toys-s3rec",
            "amazon-video-sasrec"]


def time_model(name: str, base, data: SequenceData, seed: int) -> dict:
    cfg = replace(base, model=name, train={"seed": seed})
    seed_everything(seed)
    model = make_model(cfg, data)
    start = time.perf_counter()
    result = fit(model, data, cfg, progress=False)
    wall = time.perf_counter() - start  # includes GemiRec's after_fit selection on validation users
    epochs = max(result.epochs_run, 1)
    per_epoch = [b["seconds"] - a["seconds"] for a, b in zip(result.history, result.history[1:])]
    return {"model": name, "wall_s": wall, "epochs": result.epochs_run, "stopped": result.stopped,
            "s_per_epoch": statistics.median(per_epoch) if per_epoch else wall / epochs,
            # the best per-epoch validation R@50 (GemiRec's estimates its partition during training);
            # GemiRec's after-selection figure, the one the campaign tables show, is stored beside it
            "val_recall@50": result.best_val_recall50,
            # cumulative seconds since fit began (training and per-epoch validation), that epoch's
            # validation R@50 and whether it could be the kept model (GemiRec's warm-up epochs are the
            # single-vector backbone, never kept): time to quality reads the first kept-able epoch
            # that reaches the target
            "history": [[round(h["seconds"], 3), h["val_recall@50"], bool(model.selectable(h["epoch"]))]
                        for h in result.history],
            "selected_val_recall@50": (getattr(model, "selected", None) or {}).get("val_recall@50")}


def time_to_quality(history: list[list[float]], target: float) -> float | None:
    """Cumulative seconds at the first epoch that could be the kept model (third field, True when
    absent) and whose validation R@50 is at least `target`; None if no epoch reaches it. GemiRec's
    per-epoch values are before its post-training choice on validation users (which only raises
    them), so this is the conservative reading."""
    for seconds, val, *keepable in history:
        if (not keepable or keepable[0]) and val is not None and val >= target:
            return float(seconds)
    return None


def quality_ratio(row: dict) -> tuple[float | None, float | None]:
    """(GemiRec's time to ComiRec-SA's best validation R@50 in seconds, that time ÷ ComiRec-SA's whole
    training time); (None, None) for rows recorded before histories were kept, (None, inf) when GemiRec
    never reached it."""
    sa, gr = row["comirec-sa"], row["gemirec"]
    if "history" not in sa or "history" not in gr:
        return None, None
    target = max(h[1] for h in sa["history"])
    ttq = time_to_quality(gr["history"], target)
    return ttq, (ttq / sa["wall_s"] if ttq is not None else float("inf"))


def _ttq_cells(r: dict) -> str:
    ttq, ratio = quality_ratio(r)
    if ratio is None:
        return "– | –"
    if ttq is None:
        return "not reached | **> 1 (fails)**"
    return f"{ttq:.0f} | **{ratio:.2f}**"


def _row_line(r: dict) -> str:
    sa, gr = r["comirec-sa"], r["gemirec"]
    name = r["dataset"] + (f" (GemiRec {', '.join(r['gemirec_set'])})" if r.get("gemirec_set") else "")
    return (f"| {name} | {r['seed']} | {r['threads']} | {r['load_before']:.2f} "
            f"| {sa['wall_s']:.0f} ({sa['epochs']}) | {gr['wall_s']:.0f} ({gr['epochs']}) "
            f"| {_ttq_cells(r)} | {gr['wall_s'] / sa['wall_s']:.2f} | {sa['s_per_epoch']:.1f} "
            f"| {gr['s_per_epoch']:.1f} "
            f"| {gr['s_per_epoch'] / sa['s_per_epoch']:.2f} | {r.get('cpu', '?')} | {r.get('commit', '?')} "
            f"| {r['created']} |")


def write_table(rows: list[dict], out: Path) -> None:
    """The latest run per (dataset, seed, threads) on top; every earlier run below, for the record."""
    header = ["| dataset | seed | threads | load before | SA wall s (epochs) | GemiRec wall s (epochs) "
              "| GemiRec s to SA's best val R@50 | time to quality ÷ SA wall (≤ 1.0) "
              "| total wall ratio | s/epoch SA | s/epoch GemiRec | per-epoch ratio | CPU | commit | when |",
              "|" + "---|" * 15]

    def key(r: dict) -> tuple:
        return r["dataset"], r["seed"], r["threads"], tuple(r.get("gemirec_set", ()))

    latest: dict[tuple, dict] = {}
    for r in rows:
        latest[key(r)] = r
    older = [r for r in rows if latest[key(r)] is not r]
    lines = ["# Training time: GemiRec against ComiRec-SA, back to back", "",
             "Made by `python -m benchmarks.train_time --dataset <name> --threads <n>`: both models train",
             "one after the other in one process with the benchmark's preset and budget (early stopping",
             "on validation Recall@50). `wall` includes GemiRec's choice of its merge settings on",
             "validation users. `load before` is the 1-minute load average when the run began (2 cores).",
             "Ratios from different CPUs differ (one model may gain more from a newer CPU than the other):",
             "compare rows of one CPU; rows made before 2026-11-28 15:00 did not record theirs.",
             "Bar (issue #23, decision 3): time to quality, the seconds (training and per-epoch validation)",
             "until GemiRec's validation R@50 first reaches ComiRec-SA's best validation R@50, at most",
             "1.0 × ComiRec-SA's whole training time. GemiRec's per-epoch validation R@50 is read before its",
             "choice of merge settings, which only raises it: a conservative reading. The total wall ratio",
             "(the earlier bar, ≤ 2) stays beside it. `–`: run made before per-epoch histories were kept.",
             "", "## Latest run per dataset", "", *header, *map(_row_line, latest.values())]
    pending = [ds for ds in CAMPAIGN if not any(r["dataset"] == ds and quality_ratio(r)[1] is not None
                                                 for r in latest.values())]
    if pending:
        lines += ["", "Time to quality pending (no back-to-back run with histories yet): "
                  + ", ".join(pending) + ". Each is one command, e.g.", "",
                  *[f"    nice -n 5 python -m benchmarks.train_time --dataset {ds} --threads 1" for ds in pending]]
    if older:
        lines += ["", "## Earlier runs (older code; kept for the record)", "", *header,
                  *map(_row_line, older)]
    (out / "train_time.md").write_text("\n".join(lines) + "\n")


def _commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
        # the code that trains; results files written by earlier runs do not make a run "dirty"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "model",
                                "features", "benchmarks/*.py"], capture_output=True, text=True).stdout.strip()
        return head + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):  # not a git checkout
        return "?"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="ml-100k")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads for both models")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", type=Path, default=RESULTS, help="folder of train_time.json/.md")
    p.add_argument("--set", action="append", default=[],
                   help="override for GemiRec only, e.g. gemirec.tf_positions=0 (an A/B against the preset)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    preset = DATASET_PRESETS.get(args.dataset, "default")
    base = load_config(preset, [f"train.threads={args.threads}"])
    configs = {"comirec-sa": base,
               "gemirec": load_config(preset, [f"train.threads={args.threads}", *args.set])}
    inter = load_dataset(args.dataset, args.data_dir)
    data = SequenceData.from_frames(inter.events, inter.items, base.data)
    load_before = float(open("/proc/loadavg").read().split()[0]) if platform.system() == "Linux" else -1.0
    row = {"dataset": args.dataset, "seed": args.seed, "threads": args.threads, "load_before": load_before,
           "cpu": cpu_model(), "commit": _commit(), "created": time.strftime("%Y-%m-%d %H:%M", time.gmtime())}
    if args.set:
        row["gemirec_set"] = list(args.set)
    for name in ("comirec-sa", "gemirec"):
        row[name] = time_model(name, configs[name], data, args.seed)
        r = row[name]
        print(f"{args.dataset} {name:>10s}: {r['wall_s']:.0f} s, {r['epochs']} epochs ({r['stopped']}), "
              f"{r['s_per_epoch']:.1f} s/epoch, val R@50 {100 * r['val_recall@50']:.2f}", flush=True)
    ratio = row["gemirec"]["wall_s"] / row["comirec-sa"]["wall_s"]
    per_epoch = row["gemirec"]["s_per_epoch"] / row["comirec-sa"]["s_per_epoch"]
    ttq, ttq_ratio = quality_ratio(row)
    reached = (f"{ttq:.0f} s = {ttq_ratio:.2f} × ComiRec-SA's wall time (bar ≤ 1.0)" if ttq is not None
               else "never reached (bar ≤ 1.0 fails)")
    print(f"{args.dataset}: GemiRec / ComiRec-SA wall time {ratio:.2f}, per epoch {per_epoch:.2f}; "
          f"GemiRec to ComiRec-SA's best val R@50: {reached}")
    store = args.out / "train_time.json"
    rows = json.loads(store.read_text()) if store.exists() else []
    rows.append(row)
    args.out.mkdir(parents=True, exist_ok=True)
    store.write_text(json.dumps(rows, indent=1))
    write_table(rows, args.out)


if __name__ == "__main__":
    main()
