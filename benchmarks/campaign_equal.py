"""The equal-budget campaign of issue #23: every model chooses its learning rate (and K) on seed 0's
validation users from a grid of comparable size, then runs at 3 seeds.

    python -m benchmarks.campaign_equal --dry-run                      # what is cached, what would train
    nohup nice -n 10 python -m benchmarks.campaign_equal > equal.log 2>&1 &   # resumable background run

Grid (the issue's): lr ∈ {1e-3, 2e-3, 3e-3} for single, YouTubeDNN and GemiRec (GemiRec keeps its own
post-training K grid); lr ∈ {1e-3, 3e-3} × K ∈ {1, 4} for MIND, ComiRec-SA and ComiRec-DR. Every run uses
one torch thread and no time budget that can cut a still-improving run. Small datasets first.

Every run goes through `benchmarks.run.run_one`, so the campaign cache makes it resumable. A run cached
earlier (any label) is reused for a grid point when its config is the point's, it was made with one
thread, and either it had no budget or it stopped for another reason than the budget (then the budget
never acted and the computation is the same). The choices and the record of every seed are written to
`benchmarks/results/equal-<dataset>.json`; the campaign's own tables are left as they are.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from benchmarks.run import CACHE, DATASET_PRESETS, RESULTS, console, run_key, run_one
from model.config import Config, load_config, replace

DATASETS = ["ml-100k", "lastfm-s3rec", "simulator", "amazon-toys-s3rec", "amazon-beauty-s3rec",
            "amazon-video-sasrec"]  # smallest first (events)
LR_ONLY = {"single", "youtubednn", "gemirec"}
LR_AND_K = {"mind", "comirec-sa", "comirec-dr"}
MODELS = ["single", "youtubednn", "mind", "comirec-sa", "comirec-dr", "gemirec"]
LRS = {m: (1e-3, 2e-3, 3e-3) for m in LR_ONLY} | {m: (1e-3, 3e-3) for m in LR_AND_K}
KS = (1, 4)
SEEDS = 3
THREADS = 1
NO_BUDGET_S = 1e9  # seconds: longer than any run, so only early stopping ends one


def grid(model: str) -> list[tuple[float, int | None]]:
    """The (lr, K) points a model chooses among; K is None where the model keeps its own."""
    if model in LR_AND_K:
        return [(lr, k) for lr in LRS[model] for k in KS]
    return [(lr, None) for lr in LRS[model]]


def candidates(base: Config, model: str, lr: float, k: int | None, seed: int) -> list[tuple[Config, bool]]:
    """Configs that compute the same run as the grid point, with whether each carries the preset's
    time budget (reused only if that budget never stopped it). The first no-budget one is what a new
    run trains. GemiRec trains at `gemirec.lr or train.lr` (`GemiRec.learning_rate`), so both spellings
    of its lr are the same run."""
    cfg = replace(base, model=model, train={"seed": seed, "threads": THREADS})
    if k is not None:
        cfg = replace(cfg, multi={"n_interests": k})
    if model == "gemirec":
        spellings = [replace(cfg, gemirec={"lr": lr}), replace(cfg, train={"lr": lr}, gemirec={"lr": 0.0})]
        if (cfg.gemirec.lr or cfg.train.lr) == lr:
            spellings.insert(0, cfg)
    else:
        spellings = [replace(cfg, train={"lr": lr})]
    out = [(replace(c, train={"max_time_s": NO_BUDGET_S}), False) for c in spellings]
    out += [(c, True) for c in spellings if c.train.max_time_s < NO_BUDGET_S]
    return out


def find_cached(dataset: str, fingerprint: str, options: list[tuple[Config, bool]], seed: int,
                cache: Path | None = None) -> dict | None:
    """A cached record (any label) of one of `options`, made with THREADS threads and not cut by a budget;
    `cache` is the campaign cache's folder (default CACHE; benchmarks.capacity passes the one it reads)."""
    folder = (cache or CACHE) / dataset
    for cfg, budgeted in options:
        key = run_key(dataset, fingerprint, cfg)
        for path in sorted(folder.glob(f"*-s{seed}-{key}*.json")):
            if not (path.name.endswith(f"-{key}.json") or path.name.endswith(f"-{key}-t{THREADS}.json")):
                continue
            rec = json.loads(path.read_text())
            if rec["config"]["train"].get("threads") != THREADS:
                continue
            if budgeted and rec.get("stopped") == "time_budget":
                continue
            return rec
    return None


def label(model: str, lr: float, k: int | None) -> str:
    return f"eq {model} lr={lr:g}" + (f" K={k}" if k is not None else "")


def resolve(dataset, data, base, model, lr, k, seed, dry_run: bool) -> tuple[dict | None, str]:
    """(record, how): a reused record ('cached'), a new run ('trained') or, in a dry run, ('to train')."""
    options = candidates(base, model, lr, k, seed)
    rec = find_cached(dataset, data.fingerprint(), options, seed)
    if rec is not None:
        return rec, "cached"
    if dry_run:
        return None, "to train"
    return run_one(dataset, data, options[0][0], label(model, lr, k)), "trained"


def campaign(dataset: str, models: list[str], dry_run: bool, data_dir: str | None = None) -> dict:
    from features.datasets import load_dataset  # late: the grid and its test need no data
    from model.sequences import SequenceData

    base = load_config(DATASET_PRESETS.get(dataset, "default"), [f"train.threads={THREADS}"])
    inter = load_dataset(dataset, data_dir)
    data = SequenceData.from_frames(inter.events, inter.items, base.data)
    out = {}
    for model in models:
        points = []
        for lr, k in grid(model):
            rec, how = resolve(dataset, data, base, model, lr, k, 0, dry_run)
            val = rec["val"]["recall@50"] if rec else None
            points.append({"lr": lr, "K": k, "seed0_val_recall@50": val, "how": how,
                           "record": rec and f"{rec['label']}-s0"})
            console.print(f"{dataset} {model} lr={lr:g} K={k} seed 0: {how}"
                          + (f", val R@50 {100 * val:.2f}" if val is not None else ""))
        entry = {"grid": points, "options": len(points)}
        if all(p["seed0_val_recall@50"] is not None for p in points):
            best = max(points, key=lambda p: p["seed0_val_recall@50"])  # first of ties: the smaller lr
            entry["chosen"] = {"lr": best["lr"], "K": best["K"]}
            entry["seeds"] = {}
            for seed in range(SEEDS):
                rec, how = resolve(dataset, data, base, model, best["lr"], best["K"], seed, dry_run)
                entry["seeds"][seed] = {"how": how, "test_recall@50": rec and rec["test"]["recall@50"],
                                        "val_recall@50": rec and rec["val"]["recall@50"]}
        out[model] = entry
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", default=",".join(DATASETS))
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--dry-run", action="store_true", help="train nothing: list what is cached and what is not")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    for dataset in args.datasets.split(","):
        t0 = time.perf_counter()
        result = campaign(dataset, args.models.split(","), args.dry_run, args.data_dir)
        todo = sum(p["how"] == "to train" for m in result.values() for p in m["grid"])
        console.print(f"{dataset}: done in {time.perf_counter() - t0:.0f} s"
                      + (f"; {todo} seed-0 grid runs to train" if args.dry_run else ""))
        if not args.dry_run:
            (args.out / f"equal-{dataset}.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
