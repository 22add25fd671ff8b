"""Capacity curve of issue #23: single vector and GemiRec at several embedding dimensions, and GemiRec's
margin over the single vector against catalogue size across every dataset.

    python -m benchmarks.capacity --dry-run            # what is cached, what would train
    nohup nice -n 10 python -m benchmarks.capacity > capacity.log 2>&1 &   # resumable background run
    python -m benchmarks.capacity --report             # rebuild capacity.md/.json/.png, train nothing

Every (dataset, model, dim) run goes through `benchmarks.run.run_one` at one seed, one torch thread and no
time budget that can cut a still-improving run, so the command resumes where it stopped: finished runs are
read back from `benchmarks/cache/` (a run killed mid-training starts again from its first epoch: `run_one`
keeps no checkpoint). A run cached by another command is reused when its config is the
point's, it was made with one thread, and any budget it had never stopped it (as in
`benchmarks.campaign_equal`). Each model's dimension is also chosen on validation users (best seed-0
validation R@50), the choice the issue's moonshot asks for.

The margin panel takes, per dataset, the best source there is: the equal-budget campaign
(`equal-<dataset>.json`, read through `benchmarks.equal_tables`), else the older campaign table
(`<dataset>.json`), else this command's runs at dim 64.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from pathlib import Path

import numpy as np

from benchmarks import equal_tables, run
from benchmarks.campaign_equal import NO_BUDGET_S, THREADS, find_cached
from benchmarks.machine import cpu_model
from benchmarks.run import DATASET_PRESETS, console
from model.config import Config, load_config, replace

DATASETS = ["amazon-beauty-s3rec", "nowplaying-sessions"]  # the issue's: a reference set and the largest catalogue
DIMS = (16, 32, 64, 128)
MODELS = ("single", "gemirec")
MARGIN_DIM = 64  # the dimension every campaign trains at: the capacity runs' point on the margin panel
NO_ORDER = {"gowalla-lightgcn"}  # items sorted by id, not time: sequence models read no order there
SOURCES = {"equal": "equal budget", "older": "older campaign", "capacity": f"capacity dim {MARGIN_DIM}"}
MARKERS = {"equal": "o", "older": "s", "capacity": "^"}
ROOT = Path(__file__).resolve().parent


def label(model: str, dim: int) -> str:
    return f"cap {model} d={dim}"


def display(dataset: str) -> str:
    return dataset + (" (no order)" if dataset in NO_ORDER else "")


def candidates(base: Config, model: str, dim: int, seed: int) -> list[tuple[Config, bool]]:
    """Configs that compute the point's run, each with whether it carries the preset's time budget (then
    reusable only if the budget never stopped it). The first is what a new run trains."""
    cfg = replace(base, model=model, backbone={"dim": dim}, train={"seed": seed, "threads": THREADS})
    out = [(replace(cfg, train={"max_time_s": NO_BUDGET_S}), False)]
    if cfg.train.max_time_s < NO_BUDGET_S:
        out.append((cfg, True))
    return out


def typical_seconds(dataset: str, model: str) -> float | None:
    """Median train + test-eval seconds of the cached one-thread runs of `model` on `dataset` (any dim):
    what a dry run quotes as the cost of one run still to train."""
    secs = []
    for path in (run.CACHE / dataset).glob("*.json"):
        rec = json.loads(path.read_text())
        if rec.get("model") == model and rec["config"]["train"].get("threads") == THREADS:
            secs.append(rec["train_seconds"] + rec.get("test_eval_seconds", 0.0))
    return float(np.median(secs)) if secs else None


def run_grid(datasets: list[str], dims: list[int], models: list[str], seed: int, overrides: list[str],
             dry_run: bool, data_dir: str | None = None) -> tuple[list[dict], dict[str, int]]:
    """One row per (dataset, model, dim): its record's numbers, or how="to train" where none is cached
    (a dry run or --report trains nothing). Also each dataset's catalogue size."""
    from features.datasets import load_dataset  # late: the report's margins need no data
    from model.sequences import SequenceData

    rows, n_items = [], {}
    total, done = len(datasets) * len(models) * len(dims), 0
    for ds in datasets:
        base = load_config(DATASET_PRESETS.get(ds, "default"), [f"train.threads={THREADS}"] + overrides)
        inter = load_dataset(ds, data_dir)
        data = SequenceData.from_frames(inter.events, inter.items, base.data)
        n_items[ds] = data.n_items
        todo_s = 0.0
        for model in models:
            for dim in dims:
                done += 1
                options = candidates(base, model, dim, seed)
                rec, how = find_cached(ds, data.fingerprint(), options, seed, cache=run.CACHE), "cached"
                if rec is None and not dry_run:
                    console.print(f"[{done}/{total}] {ds} {model} d={dim}: training")
                    rec, how = run.run_one(ds, data, options[0][0], label(model, dim)), "trained"
                row = {"dataset": ds, "model": model, "dim": dim, "how": "to train" if rec is None else how}
                if rec is not None:
                    row.update({"record": f"{rec['label']}-s{rec['seed']}", "val_recall@50": rec["val"]["recall@50"],
                                "test_recall@50": rec["test"]["recall@50"], "train_seconds": rec["train_seconds"],
                                "epochs": rec["epochs"], "stopped": rec["stopped"]})
                    note = (f"val R@50 {100 * row['val_recall@50']:.2f}, test R@50 {100 * row['test_recall@50']:.2f}"
                            f", train {row['train_seconds']:.0f} s")
                else:
                    typical = typical_seconds(ds, model)
                    todo_s += typical or 0.0
                    note = (f"cached {model} runs here took a median {typical / 60:.0f} min" if typical
                            else "no cached run here to time it by")
                console.print(f"[{done}/{total}] {ds} {model} d={dim}: {row['how']} ({note})")
                rows.append(row)
        todo = sum(r["how"] == "to train" for r in rows if r["dataset"] == ds)
        if todo:
            console.print(f"{ds}: {todo} runs to train" + (f", about {todo_s / 3600:.1f} h one at a time by "
                                                           "the cached runs' medians" if todo_s else ""))
    return rows, n_items


def per_dataset(rows: list[dict]) -> dict:
    """Per dataset: each model's validation-chosen dim, and GemiRec ÷ single per dim and at those dims."""
    out = {}
    for ds in dict.fromkeys(r["dataset"] for r in rows):
        got = {(r["model"], r["dim"]): r for r in rows if r["dataset"] == ds and "test_recall@50" in r}
        chosen = {}
        for model in dict.fromkeys(r["model"] for r in rows if r["dataset"] == ds):
            dims = [d for m, d in got if m == model]
            if dims:  # first of ties: the smaller dim
                chosen[model] = max(sorted(dims), key=lambda d: got[(model, d)]["val_recall@50"])
        ratio = {d: got[("gemirec", d)]["test_recall@50"] / got[("single", d)]["test_recall@50"]
                 for m, d in sorted(got) if m == "gemirec" and ("single", d) in got}
        entry = {"chosen_dim": chosen, "ratio_by_dim": ratio, "complete": all(r["how"] != "to train" for r in rows
                                                                             if r["dataset"] == ds)}
        if {"gemirec", "single"} <= set(chosen):
            entry["ratio_at_chosen"] = (got[("gemirec", chosen["gemirec"])]["test_recall@50"]
                                        / got[("single", chosen["single"])]["test_recall@50"])
        out[ds] = entry
    return out


def equal_margin(ds: str, results: Path) -> dict | None:
    """GemiRec ÷ single under the equal tuning budget: paired on the same test users and seeds."""
    path = results / f"equal-{ds}.json"
    if not path.exists():
        return None
    campaign = json.loads(path.read_text())
    entries = {m: equal_tables.model_entry(ds, m, campaign[m]) for m in ("gemirec", "single") if m in campaign}
    if entries.get("gemirec") is None or entries.get("single") is None:
        return None  # the campaign has not finished one of the two
    p = equal_tables.paired(entries["gemirec"], entries["single"])
    return {"ratio": p["ratio"], "lo": p["lo"], "hi": p["hi"], "seeds": p["seeds"],
            "gemirec": entries["gemirec"]["test_recall@50"]["mean"],
            "single": entries["single"]["test_recall@50"]["mean"]}


def older_margin(ds: str, results: Path) -> dict | None:
    """GemiRec ÷ single from the older campaign table (`benchmarks.run`'s per-dataset JSON): seed means."""
    path = results / f"{ds}.json"
    if not path.exists():
        return None
    table = json.loads(path.read_text())
    if "gemirec" not in table or "single" not in table:
        return None
    g, s = (float(np.mean([v for v in table[m]["test"]["recall@50"] if v is not None])) for m in ("gemirec", "single"))
    return {"ratio": g / s, "lo": None, "hi": None, "seeds": len(table["gemirec"]["seeds"]), "gemirec": g, "single": s}


def capacity_margin(ds: str, rows: list[dict]) -> dict | None:
    got = {r["model"]: r for r in rows if r["dataset"] == ds and r["dim"] == MARGIN_DIM and "test_recall@50" in r}
    if "gemirec" not in got or "single" not in got:
        return None
    g, s = got["gemirec"]["test_recall@50"], got["single"]["test_recall@50"]
    return {"ratio": g / s, "lo": None, "hi": None, "seeds": 1, "gemirec": g, "single": s}


def margins(results: Path, rows: list[dict], catalogue: dict[str, int], data_dir: str | None = None) -> list[dict]:
    """One point per dataset with a source, the best source first; catalogue sizes missing from
    `catalogue` are computed (and added to it)."""
    names = list(dict.fromkeys(list(DATASET_PRESETS) + [r["dataset"] for r in rows]))
    points = []
    for ds in names:
        found = best_margin(ds, results, rows)
        if found is None:
            continue
        if ds not in catalogue:
            catalogue[ds] = catalogue_size(ds, data_dir)
        points.append({"dataset": ds, "label": display(ds), "source": found[0], "n_items": catalogue[ds], **found[1]})
    return points


def best_margin(ds: str, results: Path, rows: list[dict]) -> tuple[str, dict] | None:
    """(source, point) from the first source that has both models, in the order of SOURCES."""
    for source, point in (("equal", equal_margin(ds, results)), ("older", older_margin(ds, results))):
        if point is not None:
            return source, point
    point = capacity_margin(ds, rows)
    return None if point is None else ("capacity", point)


def catalogue_size(ds: str, data_dir: str | None = None) -> int:
    from features.datasets import load_dataset
    from model.sequences import SequenceData

    cfg = load_config(DATASET_PRESETS.get(ds, "default"))
    inter = load_dataset(ds, data_dir)
    return SequenceData.from_frames(inter.events, inter.items, cfg.data).n_items


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.2f}"


def _ratio(p: dict) -> str:
    return f"{p['ratio']:.3f}" + (f" [{p['lo']:.3f}, {p['hi']:.3f}]" if p.get("lo") is not None else "")


def markdown(summary: dict) -> str:
    out = ["# Capacity curve (issue #23)", "", f"Made by `{summary['command']}`",
           f"at commit {summary['commit']} on {summary['machine']}: seed {summary['seed']}, one torch thread, no",
           "time budget (early stopping ends a run). Test and validation R@50 in %; `train s` on that machine.",
           "Each model's dimension is chosen on validation users (best validation R@50); GemiRec ÷ single is",
           "the ratio of test R@50.", ""]
    for ds, entry in summary["datasets"].items():
        runs = {(r["model"], r["dim"]): r for r in summary["runs"] if r["dataset"] == ds}
        out += [f"## {display(ds)}: {summary['catalogue'][ds]:,} items", "",
                "| dim | single test | single val | GemiRec test | GemiRec val | GemiRec ÷ single | train s "
                "(single / GemiRec) |", "|---|---|---|---|---|---|---|"]
        for dim in summary["dims"]:
            s, g = runs.get(("single", dim), {}), runs.get(("gemirec", dim), {})
            ratio = entry["ratio_by_dim"].get(dim) or entry["ratio_by_dim"].get(str(dim))
            secs = " / ".join(f"{r['train_seconds']:.0f}" if "train_seconds" in r else r.get("how", "–")
                              for r in (s, g))
            out.append(f"| {dim} | {_pct(s.get('test_recall@50'))} | {_pct(s.get('val_recall@50'))} "
                       f"| {_pct(g.get('test_recall@50'))} | {_pct(g.get('val_recall@50'))} "
                       f"| {'–' if ratio is None else f'{ratio:.3f}'} | {secs} |")
        chosen = ", ".join(f"{m} d={d}" for m, d in entry["chosen_dim"].items()) or "none yet"
        out += ["", f"Validation-chosen dimension: {chosen}"
                + ("" if entry["complete"] else " (among the dims trained so far)") + "."]
        if "ratio_at_chosen" in entry:
            out.append(f"GemiRec ÷ single, each at its validation-chosen dimension: {entry['ratio_at_chosen']:.3f} "
                       "(the moonshot asks ≥ 1.10 × the best of all baselines).")
        out.append("")
    pending = [f"{r['dataset']} {r['model']} d={r['dim']}" for r in summary["runs"] if r["how"] == "to train"]
    if pending:
        out += [f"Runs still to train ({len(pending)}): " + ", ".join(pending) + ".", ""]
    out += ["## GemiRec's margin over the single vector against catalogue size", "",
            "Per dataset from the best source there is: the equal tuning budget (`equal-<dataset>.json`: each",
            "model's chosen lr, seeds 0-2, ratio paired on the same test users with its 95 % bootstrap interval),",
            "else the older campaign table (`<dataset>.json`, seed means), else the capacity runs at dim "
            f"{MARGIN_DIM}.", "",
            "| dataset | items | source | seeds | GemiRec R@50 | single R@50 | GemiRec ÷ single |",
            "|---|---|---|---|---|---|---|"]
    for p in sorted(summary["margins"], key=lambda p: p["n_items"]):
        out.append(f"| {p['label']} | {p['n_items']:,} | {SOURCES[p['source']]} | {p['seeds']} | {_pct(p['gemirec'])} "
                   f"| {_pct(p['single'])} | {_ratio(p)} |")
    return "\n".join(out) + "\n"


def plot(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    for i, ds in enumerate(summary["datasets"]):
        for model, style in (("single", "--"), ("gemirec", "-")):
            pts = sorted((r["dim"], 100 * r["test_recall@50"]) for r in summary["runs"]
                         if r["dataset"] == ds and r["model"] == model and "test_recall@50" in r)
            if pts:
                left.plot(*zip(*pts), style, marker="o", color=f"C{i}", label=f"{display(ds)} {model}")
    left.set_xscale("log", base=2)
    left.set_xticks(summary["dims"], [str(d) for d in summary["dims"]])
    left.set_xlabel("embedding dimension")
    left.set_ylabel("test R@50 (%)")
    left.set_title("Capacity: R@50 against dimension")
    for source, marker in MARKERS.items():
        pts = [p for p in summary["margins"] if p["source"] == source]
        if pts:
            right.scatter([p["n_items"] for p in pts], [p["ratio"] for p in pts], marker=marker, s=45,
                          label=SOURCES[source])
        for p in pts:
            if p.get("lo") is not None:  # the equal budget's paired 95 % interval over test users
                right.errorbar(p["n_items"], p["ratio"], yerr=[[p["ratio"] - p["lo"]], [p["hi"] - p["ratio"]]],
                               fmt="none", ecolor="grey", elinewidth=1, capsize=2)
            right.annotate(p["label"], (p["n_items"], p["ratio"]), textcoords="offset points", xytext=(4, 4),
                           fontsize=7)
    right.axhline(1.0, color="grey", lw=1)
    right.set_xscale("log")
    right.set_xlabel("catalogue size (items)")
    right.set_ylabel("GemiRec R@50 ÷ single R@50")
    right.set_title("GemiRec's margin against catalogue size")
    for axis in (left, right):
        axis.grid(True, which="both", alpha=0.3)
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def command(args) -> str:
    sets = "".join(f" --set {s}" for s in args.set)
    return (f"python -m benchmarks.capacity --datasets {args.datasets} --dims {args.dims} --models {args.models} "
            f"--seed {args.seed}{sets}")


def write(summary: dict, results: Path) -> None:
    results.mkdir(parents=True, exist_ok=True)
    (results / "capacity.json").write_text(json.dumps(summary, indent=1) + "\n")
    (results / "capacity.md").write_text(markdown(summary))
    plot(summary, results / "capacity.png")


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", default=",".join(DATASETS))
    p.add_argument("--dims", default=",".join(map(str, DIMS)))
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", action="append", default=[], help="config override, e.g. train.lr=0.003")
    p.add_argument("--dry-run", action="store_true", help="train and write nothing: list what is cached")
    p.add_argument("--report", action="store_true", help="train nothing: rebuild md/json/png from the cache")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--results", type=Path, default=None, help="where the tables are read and written "
                                                               "(default benchmarks/results)")
    args = p.parse_args(argv)
    results = args.results or run.RESULTS
    datasets, models = args.datasets.split(","), args.models.split(",")
    dims = [int(d) for d in args.dims.split(",")]
    t0 = time.perf_counter()
    rows, catalogue = run_grid(datasets, dims, models, args.seed, args.set, args.dry_run or args.report,
                               args.data_dir)
    console.print(f"grid resolved in {time.perf_counter() - t0:.0f} s")
    if args.dry_run:
        return {"runs": rows}
    old = results / "capacity.json"
    if old.exists():  # sizes computed before: the margin panel loads no dataset twice
        catalogue = {**json.loads(old.read_text()).get("catalogue", {}), **catalogue}
    summary = {"command": command(args), "commit": git_commit(), "machine": f"{cpu_model()}, {os.cpu_count()} cores",
               "seed": args.seed, "dims": dims, "models": models, "overrides": args.set, "runs": rows,
               "datasets": per_dataset(rows)}
    summary["margins"] = margins(results, rows, catalogue, args.data_dir)
    summary["catalogue"] = catalogue
    write(summary, results)
    console.print(f"wrote {results / 'capacity.md'}, .json and .png")
    return summary


if __name__ == "__main__":
    main()
