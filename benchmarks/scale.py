"""The train-gemirec flow stage by stage on growing logs: wall time, peak memory, events per second.

    python -m benchmarks.scale                                   # sim-0.1M, sim-1M, nowplaying-1M + before
    python -m benchmarks.scale --logs sim-10M,sim-10M-bad        # the big ones (one heavy run at a time)
    python -m benchmarks.scale --report                          # rebuild scale.md/.json/.png from cache

Each stage (benchmarks/scale_stages.py) runs in its own child process; the peak RSS is that of the whole
process tree, sampled every 0.1 s with psutil. A finished stage is cached in
``runs/scale/<log>/results/<stage>.json``, so a stopped run resumes at the first missing stage; a failed
stage is recorded and the log's later stages are skipped. ``sim-1M`` also runs the feature stage the way
it ran before the streaming one (``--path old``, rows "sim-1M before"), in the same invocation, so that
the before/after ratio compares two measurements taken on the same machine at the same time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import psutil

from benchmarks.machine import cpu_model
from benchmarks.process_tree import run_measured
from benchmarks.scale_stages import FEATURE_STAGES, LOGS, MODEL_STAGES, stages_of

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "runs" / "scale"
RESULTS = ROOT / "benchmarks" / "results"
DEFAULT_LOGS = ("sim-0.1M", "sim-1M", "nowplaying-1M")
BEFORE_LOG = "sim-1M"


def run_child(log: str, stage: str, work: Path, path: str) -> dict:
    """Time one stage in a fresh interpreter and sample the RSS of its process tree."""
    command = [sys.executable, "-m", "benchmarks.scale_stages", log, stage, str(work), "--path", path]
    env = {**os.environ, "OMP_NUM_THREADS": "2", "PYTHONWARNINGS": "ignore"}
    done = run_measured(command, work / f"{stage}.log", ROOT, env)
    facts_path = work / "facts" / f"{stage}.json"
    facts = json.loads(facts_path.read_text()) if done.returncode == 0 and facts_path.exists() else {}
    return {"stage": stage, "seconds": done.seconds, "cpu_s": done.cpu_s, "peak_rss_gb": done.peak_rss_gb,
            "returncode": done.returncode, "facts": facts}


def run_log(log_name: str, path: str = "new", force: bool = False, model_stages: bool = True,
            full_training: bool = True) -> list[dict]:
    label = log_name if path == "new" else f"{log_name} before"
    work = WORK / log_name if path == "new" else WORK / f"{log_name}-before"
    results = work / "results"
    results.mkdir(parents=True, exist_ok=True)
    stages = [s for s in stages_of(LOGS[log_name]) if (model_stages or s not in MODEL_STAGES)
              and (full_training or s != "train_full")]
    if path == "old":  # the old feature stage reads the new path's ingested log
        stages = list(FEATURE_STAGES)
        data = work / "data"
        if not data.exists():
            data.symlink_to(WORK / log_name / "data", target_is_directory=True)
    rows = []
    for stage in stages:
        cached = results / f"{stage}.json"
        if cached.exists() and not force:
            row = json.loads(cached.read_text())
        else:
            print(f"[scale] {label}: {stage} ...", flush=True)
            row = run_child(log_name, stage, work, path)
            cached.write_text(json.dumps(row, indent=1))
            print(f"[scale] {label}: {stage} {row['seconds']:.1f} s, {row['peak_rss_gb']:.2f} GB, "
                  f"rc {row['returncode']}", flush=True)
        rows.append({"log": label, **row})
        if row["returncode"] != 0:
            print(f"[scale] {label}: {stage} failed, see {work / (stage + '.log')}", flush=True)
            cached.unlink()  # a failure is not cached: the next run retries it
            break
    return rows


def events_of(rows: list[dict], log: str) -> int | None:
    base = log.removesuffix(" before")
    facts = next((r["facts"] for r in rows if r["log"] == base and r["stage"] == "ingest"), None)
    return facts and facts.get("n_valid")


def collect() -> list[dict]:
    rows = []
    for name in LOGS:
        for label, work in ((name, WORK / name), (f"{name} before", WORK / f"{name}-before")):
            for stage_file in sorted((work / "results").glob("*.json")) if (work / "results").exists() else []:
                rows.append({"log": label, **json.loads(stage_file.read_text())})
    return rows


def summarise() -> dict:
    rows = collect()
    out = {"commit": git_commit(), "machine": f"{cpu_model()}, {os.cpu_count()} cores, "
                                               f"{psutil.virtual_memory().total / 2**30:.0f} GiB",
           "rows": [], "logs": {}}
    for row in rows:
        events = events_of(rows, row["log"])
        work = row["facts"].get("work_s")
        row = {**row, "events": events, "work_s": work,
               "events_per_s": round(events / work) if events and work else None}
        out["rows"].append(row)
    for label in dict.fromkeys(r["log"] for r in out["rows"]):
        mine = [r for r in out["rows"] if r["log"] == label]
        feature = [r for r in mine if r["stage"] in FEATURE_STAGES]
        out["logs"][label] = {
            "events": mine[0]["events"],
            "feature_stage_s": round(sum(r["seconds"] for r in feature), 1) if len(feature) == 4 else None,
            "feature_work_s": round(sum(r["work_s"] or 0 for r in feature), 1) if len(feature) == 4 else None,
            "feature_cpu_s": round(sum(r.get("cpu_s") or 0 for r in feature), 1) if len(feature) == 4 else None,
            "feature_stage_peak_gb": max((r["peak_rss_gb"] for r in feature), default=None),
            "baseline_gb": next((r["peak_rss_gb"] for r in mine if r["stage"] == "apply"), None),
            "flow_s": round(sum(r["seconds"] for r in flow_stages(mine)), 1),
            "flow_peak_gb": max(r["peak_rss_gb"] for r in flow_stages(mine)),
            "stages": [r["stage"] for r in mine],
        }
    out["before_after"] = before_after(out["logs"])
    return out


def flow_stages(rows: list[dict]) -> list[dict]:
    """The stages one train-gemirec run is made of: it trains once, in full where the log has a full
    training (the one-epoch stage is measured beside it, not part of the run); the CSV writer is setup."""
    full = any(r["stage"] == "train_full" for r in rows)
    return [r for r in rows if r["stage"] != "setup" and not (full and r["stage"] == "train_epoch")]


def before_after(logs: dict) -> dict | None:
    old, new = logs.get(f"{BEFORE_LOG} before"), logs.get(BEFORE_LOG)
    if not old or not new or not old["feature_stage_s"] or not new["feature_stage_s"]:
        return None
    return {"log": BEFORE_LOG, "time_ratio": round(old["feature_stage_s"] / new["feature_stage_s"], 2),
            "work_ratio": round(old["feature_work_s"] / new["feature_work_s"], 2) if new["feature_work_s"] else None,
            "memory_ratio": round(old["feature_stage_peak_gb"] / new["feature_stage_peak_gb"], 2),
            # what a stage holds beyond the interpreter with Feast imported (the apply stage's peak: imports
            # and the registry only), i.e. the memory that grows with the log
            "memory_above_baseline_ratio": round((old["feature_stage_peak_gb"] - old["baseline_gb"])
                                                 / (new["feature_stage_peak_gb"] - new["baseline_gb"]), 2)}


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def markdown(summary: dict) -> str:
    lines = ["# Scale: the train-gemirec flow stage by stage", "",
             f"`python -m benchmarks.scale` (see its docstring for the logs), commit {summary['commit']}, "
             f"{summary['machine']}, shared with other jobs. One run per cell. wall: the stage's child "
             "process from start to exit; work: the stage itself, after its imports (Feast, torch: seconds "
             "on a loaded machine); peak RSS: the whole process tree, sampled every 0.1 s; events/s from work.",
             " cpu: user + system seconds of the stage's process and the processes it waited for. Other jobs"
             " shared the machine and their load varied between rows, so compare cpu (recorded where present)"
             " more than wall.",
             "", "| log | events | stage | wall s | work s | cpu s | peak RSS GB | events/s | notes |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in summary["rows"]:
        notes = ", ".join(f"{k} {v}" for k, v in r["facts"].items() if k not in ("folder", "work_s"))[:120]
        lines.append(f"| {r['log']} | {r['events'] or ''} | {r['stage']} | {r['seconds']:.1f} | "
                     f"{r['work_s'] or ''} | {r.get('cpu_s', '')} | {r['peak_rss_gb']:.2f} | "
                     f"{r['events_per_s'] or ''} | {notes} |")
    lines += ["", "## Per log", "", "Feature stage = sources + apply + materialize + training set (wall); "
              "µs/event from their work time. Whole flow: every stage once, with the full training where "
              "the log has one (its one-epoch stage is measured beside it, not counted).", "",
              "| log | events | feature stage s | µs/event | feature peak GB | "
              "whole flow s | flow peak GB |", "|---|---|---|---|---|---|---|"]
    for label, s in summary["logs"].items():
        per_event = f"{1e6 * s['feature_work_s'] / s['events']:.1f}" if s["feature_work_s"] and s["events"] \
            else ""
        lines.append(f"| {label} | {s['events'] or ''} | {s['feature_stage_s'] or ''} | {per_event} | "
                     f"{s['feature_stage_peak_gb'] or ''} | {s['flow_s']} | {s['flow_peak_gb']} |")
    if summary["before_after"]:
        b = summary["before_after"]
        lines += ["", f"Feature stage at {b['log']}, before / after, same run: {b['time_ratio']} × the wall time "
                      f"({b['work_ratio']} × the work time), "
                      f"{b['memory_ratio']} × the peak memory, {b['memory_above_baseline_ratio']} × the memory "
                      "above the interpreter with Feast imported (the apply stage's peak)."]
    return "\n".join(lines) + "\n"


def plot(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    sims = {k: v for k, v in summary["logs"].items() if k.startswith("sim-") and "before" not in k
            and "bad" not in k}
    for stage in dict.fromkeys(r["stage"] for r in summary["rows"]):
        points = sorted((r["events"], r["seconds"], r["peak_rss_gb"]) for r in summary["rows"]
                        if r["log"] in sims and r["stage"] == stage and r["events"])
        if len(points) < 2:
            continue
        xs, ts, ms = zip(*points)
        left.plot(xs, ts, marker="o", label=stage)
        right.plot(xs, ms, marker="o", label=stage)
    for axis, ylabel in ((left, "wall time (s)"), (right, "peak RSS of the process tree (GB)")):
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel("events (simulator)")
        axis.set_ylabel(ylabel)
        axis.grid(True, which="both", alpha=0.3)
    if left.get_legend_handles_labels()[0]:
        left.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_reports(results: Path = RESULTS) -> dict:
    summary = summarise()
    (results / "scale.json").write_text(json.dumps(summary, indent=1, default=str))
    (results / "scale.md").write_text(markdown(summary))
    plot(summary, results / "scale.png")
    return summary


def readme_table(json_path: str | Path = RESULTS / "scale.json") -> str:
    """The README's Scale table: events → wall time and peak memory of a whole train-gemirec run (every
    stage from ingest to registration, full training where the log has it, one epoch otherwise)."""
    summary = json.loads(Path(json_path).read_text())
    lines = ["| log | events | whole flow | peak RSS | feature stage | training |", "|---|---|---|---|---|---|"]
    for label, s in summary["logs"].items():
        if "before" in label or "register" not in s["stages"]:
            continue
        full = next((r["facts"] for r in summary["rows"] if r["log"] == label and r["stage"] == "train_full"),
                    None)
        training = (f"full: {full.get('epochs')} epochs, stopped by {full.get('stopped')}" if full
                    else "one epoch")
        feature = f"{s['feature_stage_s']:.0f} s" if s["feature_stage_s"] else "n/a"
        lines.append(f"| {label} | {s['events']:,} | {s['flow_s'] / 60:.1f} min | {s['flow_peak_gb']:.1f} GB | "
                     f"{feature} | {training} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--logs", default=",".join(DEFAULT_LOGS), help=f"comma list of {', '.join(LOGS)}")
    parser.add_argument("--no-before", action="store_true", help=f"skip the old feature stage on {BEFORE_LOG}")
    parser.add_argument("--force", action="store_true", help="rerun cached stages")
    parser.add_argument("--report", action="store_true", help="only rebuild the reports from the cache")
    parser.add_argument("--features-only", action="store_true", help="ingest and the feature stage only")
    parser.add_argument("--no-full-training", action="store_true", help="one epoch only, on every log")
    args = parser.parse_args()
    if not args.report:
        for name in args.logs.split(","):
            rows = run_log(name, force=args.force, model_stages=not args.features_only,
                           full_training=not args.no_full_training)
            if name == BEFORE_LOG and not args.no_before and rows and rows[-1]["returncode"] == 0:
                run_log(name, path="old", force=args.force)
            write_reports()
    summary = write_reports()
    print(markdown(summary))


if __name__ == "__main__":
    main()
