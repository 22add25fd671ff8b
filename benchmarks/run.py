"""Benchmark campaign: datasets × models × seeds in one harness, cached per run, tabulated.

    python -m benchmarks.run --dataset amazon-beauty-s3rec --models all --seeds 3

Every (dataset, model, seed, config) result is a JSON file under `benchmarks/cache/`, so a campaign can
stop at any point and resume (or grow by more seeds) later; tables are rebuilt from the cache each time
and written to `benchmarks/results/<dataset>.md` and `.json`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import time
from pathlib import Path

import numpy as np
from rich.console import Console

from benchmarks.cache_key import normalized_config  # the cache key, shared with benchmarks/tuning.py
from features.datasets import load_dataset
from model.config import Config, load_config, replace
from model.evaluation.evaluate import bootstrap_ci, build_index, evaluate
from model.sequences import SequenceData
from model.training.train import BASELINES, fit, make_model, seed_everything

ROOT = Path(__file__).resolve().parent
CACHE = ROOT / "cache"
RESULTS = ROOT / "results"
console = Console(stderr=True)

DATASET_PRESETS = {
    "amazon-beauty-s3rec": "amazon",
    "amazon-toys-s3rec": "amazon",
    "amazon-video-sasrec": "amazon",
    "ml-100k": "long",
    "lastfm-s3rec": "long",
    "simulator": "simulator",
    "simulator-tiny": "tiny",
    # the large catalogues (issue #23), by history length, not tuned: sessions are short (mean 4.9 and 7.4
    # items), like the Amazon sets; Gowalla's users are long (median 20) and unordered (sorted by item id)
    "nowplaying-sessions": "amazon",
    "diginetica-sessions": "amazon",
    "gowalla-lightgcn": "long",
}
ALL_MODELS = list(BASELINES) + ["gemirec"]
TRAINING = {
    "mostpop": "counts",
    "youtubednn": "all positions (prefix means)",
    "single": "all positions",
    "mind": "one cut per user/step",
    "comirec-sa": "one cut per user/step",
    "comirec-dr": "one cut per user/step",
}


# Bump when training or evaluation semantics change, so stale cached runs are not mixed into tables.
CACHE_VERSION = 2


def run_key(dataset: str, fingerprint: str, cfg: Config) -> str:
    raw = normalized_config(cfg.to_dict())
    blob = json.dumps({"dataset": dataset, "data": fingerprint, "cfg": raw, "v": CACHE_VERSION},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def epoch_diagnostics(fit_result) -> dict:
    """GemiRec's dictionary and generator diagnostics at the kept epoch."""
    return {k: v for k, v in fit_result.history[fit_result.best_epoch].items()
            if k.startswith(("code_", "dead_", "topk_hit", "oracle"))}


def weights_path(dataset: str, seed: int, key: str) -> Path:
    """Where a trained GemiRec's weights are cached (git-ignored), shared by the campaign and the ablation."""
    return CACHE / dataset / "models" / f"gemirec-s{seed}-{key}.pt"


def save_weights(path: Path, model, fit_result, seconds: float) -> dict:
    import torch  # late: the tables and keys need no torch

    meta = {"train_seconds": seconds, "best_epoch": fit_result.best_epoch,
            "diagnostics": epoch_diagnostics(fit_result)}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state": model.state_dict(), "meta": meta}, path)
    return meta


def cached_record(dataset: str, label: str, cfg: Config, key: str) -> tuple[Path, dict | None]:
    """Where a run is written, and its cached record if one may be reused.

    `threads` changes results in the last digits, so a run asked for with a fixed thread count
    (`--threads N`, N > 0) reuses only a record made with N threads (its stored config says so). `run_key`
    leaves threads out, so that the key the ablation, the backfill and the Prefect flow compute, and every
    record cached before, stay as they were: a run is written under that plain name when it is free, and
    under `-tN` beside a record of another thread count. `--threads 0` (torch's default, which depends
    on the machine) keeps the earlier lookup: the plain record, whatever thread count made it."""
    folder, seed, threads = CACHE / dataset, cfg.train.seed, cfg.train.threads
    plain = folder / f"{label}-s{seed}-{key}.json"
    pinned = folder / f"{label}-s{seed}-{key}-t{threads}.json"
    if plain.exists():
        rec = json.loads(plain.read_text())
        if threads == 0 or rec["config"]["train"].get("threads") == threads:
            return plain, rec
    elif threads == 0 or not pinned.exists():
        return plain, None
    return pinned, json.loads(pinned.read_text()) if pinned.exists() else None


def run_one(dataset: str, data: SequenceData, cfg: Config, label: str, force: bool = False) -> dict:
    key = run_key(dataset, data.fingerprint(), cfg)
    path, cached = cached_record(dataset, label, cfg, key)
    if cached is not None and not force:
        return cached
    seed_everything(cfg.train.seed)
    model = make_model(cfg, data)
    fit_result = fit(model, data, cfg, progress=console.is_terminal)
    index = build_index(model)
    val = evaluate(model, data, 1, index=index, ild=True)
    t0 = time.perf_counter()
    test = evaluate(model, data, 2, index=index, per_user=True, ild=True)
    test_seconds = time.perf_counter() - t0
    lo, hi = bootstrap_ci(test.per_user["recall@50"])
    diagnostics = {}
    if hasattr(model, "item_codes"):
        from model.gemirec.diagnostics import next_interest_recovery

        diagnostics = epoch_diagnostics(fit_result)
        diagnostics.update(next_interest_recovery(model, data, 2))
    record = {
        "cache_version": CACHE_VERSION, "dataset": dataset, "label": label, "model": cfg.model,
        "seed": cfg.train.seed,
        "config": cfg.to_dict(), "data_fingerprint": data.fingerprint(),
        "train_seconds": fit_result.seconds, "best_epoch": fit_result.best_epoch,
        "epochs": fit_result.epochs_run, "stopped": fit_result.stopped,
        "val": val.metrics, "test": test.metrics, "test_users": test.n_users,
        "test_eval_seconds": test_seconds, "test_recall@50_ci95": [lo, hi],
        # per test user, in the eval set's fixed order: models are compared user by user (summary.py)
        "test_per_user_recall@50": [round(float(x), 6) for x in test.per_user["recall@50"]],
        "history": fit_result.history, "diagnostics": diagnostics,
        "selected": getattr(model, "selected", None),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    if hasattr(model, "item_codes"):  # the ablation's base model for this config: it need not retrain it
        # a thread-pinned run keeps its own weights beside (not over) an unpinned run of the same config
        wkey = key if path.name.endswith(f"-{key}.json") else f"{key}-t{cfg.train.threads}"
        save_weights(weights_path(dataset, cfg.train.seed, wkey), model, fit_result, fit_result.seconds)
    path.write_text(json.dumps(record, indent=1))
    return record


def _fmt(values: list[float], scale: float = 100.0) -> str:
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=float) * scale
    if len(v) == 0:
        return "–"
    return f"{v.mean():.2f} ± {v.std(ddof=1):.2f}" if len(v) > 1 else f"{v.mean():.2f}"


COLUMNS = [
    ("recall@20", "R@20"), ("recall@50", "R@50"), ("ndcg@20", "NDCG@20"), ("ndcg@50", "NDCG@50"),
    ("hit@20", "HR@20"), ("hit@50", "HR@50"), ("diversity@50", "Div@50"),
    ("novel_recall@50", "Novel R@50"), ("unique_ratio@50", "Unique@50"),
    # the merged list a user sees (issue #23); runs cached before these existed show "–"
    ("distinct_categories@50", "Cats@50"), ("ild@50", "ILD@50"), ("coverage@50", "Cov@50"),
]
COUNT_COLUMNS = {"distinct_categories@50"}  # a number of categories, not a share: printed unscaled


def _training(label: str, rec: dict) -> str:
    if rec["config"]["train"].get("sampling", "native") == "cut":
        return "one cut per user/step (forced)"
    return TRAINING.get(rec.get("model", label), "staged (warm-up, k-means, joint)")


def write_tables(dataset: str, records: list[dict], command: str, cached: list[dict] | None = None) -> Path:
    """Tables of `records` (one per label and seed); `cached` (default: `records`) is every valid cached
    run of the dataset, from which each row's tuning options are counted (benchmarks/tuning.py)."""
    from benchmarks import tuning

    cached = records if cached is None else cached
    by_label: dict[str, list[dict]] = {}
    for r in records:
        by_label.setdefault(r["label"], []).append(r)
    rows, summary = [], {}
    for label, recs in by_label.items():
        recs = sorted(recs, key=lambda r: r["seed"])
        cells = [label, _training(label, recs[0]),
                 str(len(recs))]
        for key, _ in COLUMNS:
            cells.append(_fmt([r["test"].get(key) for r in recs], 1.0 if key in COUNT_COLUMNS else 100.0))
        cells.append(_fmt([r["test"].get("interest_cosine") for r in recs], 1.0))
        cells.append(_fmt([r["val"].get("recall@50") for r in recs]))
        cells.append(f"{np.median([r['train_seconds'] for r in recs]):.0f}")
        cells.append(f"{np.median([r['test_eval_seconds'] for r in recs]):.2f}")
        rows.append(cells)
        summary[label] = {
            "seeds": [r["seed"] for r in recs],
            "test": {k: [r["test"].get(k) for r in recs] for k, _ in COLUMNS},
            "val_recall@50": [r["val"]["recall@50"] for r in recs],
            "val": {k: [r["val"].get(k) for r in recs] for k, _ in COLUMNS},
            "test_recall@50_ci95": [r["test_recall@50_ci95"] for r in recs],
            "train_seconds": [r["train_seconds"] for r in recs],
            "test_eval_seconds": [r["test_eval_seconds"] for r in recs],
            "epochs": [r["epochs"] for r in recs],
            "test_per_user_recall@50": [r.get("test_per_user_recall@50") for r in recs],
            # what the verdicts and the options column need (summary.py, verdicts.py)
            "model": recs[-1]["config"]["model"],
            "lr": tuning.effective_lr(recs[-1]["config"]), "K": tuning.grid_point(recs[-1]["config"])[1],
            "threads": [r["config"]["train"].get("threads") for r in recs],
            "variants": [list(v) for v in tuning.variants(recs[-1]["config"], cached)],
            "post_training_options": tuning.post_training_options(recs[-1]["config"]),
            "curves": [tuning.keepable_curve(r) for r in recs],
        }
    header = ["model", "training", "seeds"] + [c for _, c in COLUMNS] + ["query cos", "val R@50", "train s",
                                                                         "eval s"]
    n_users = records[0]["test_users"] if records else 0
    lines = [
        f"# {dataset}: test users ({n_users}), full-catalogue exact retrieval",
        "",
        f"Made by `{command}` (cached runs under `benchmarks/cache/{dataset}/`).",
        "Metrics in % (mean ± sample std over seeds, ddof = 1); history items are not filtered (ComiRec",
        "convention). Unique@50: distinct items among the K interests' own top-50 lists / (K · 50); the",
        "merged top-50 a user sees: Cats@50 = distinct item categories (a count), ILD@50 = mean cosine",
        "distance between the list's items' training-user vectors, Cov@50 = share of the catalogue in any",
        "test user's list.",
        "Test users' metrics except `val R@50` (validation users: what early stopping and every choice",
        "between variants (labels with a suffix) look at).",
        "`train s` and `eval s` are medians over seeds on this machine (2 CPU cores).",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    lines += _ratios(summary)
    lines += _diagnostics_table(by_label)
    RESULTS.mkdir(parents=True, exist_ok=True)
    md = RESULTS / f"{dataset}.md"
    md.write_text("\n".join(lines) + "\n")
    (RESULTS / f"{dataset}.json").write_text(json.dumps(summary, indent=1))
    return md


def _ratios(summary: dict) -> list[str]:
    """GemiRec against the bars it must clear, as ratios of medians/means from the same campaign."""
    if "gemirec" not in summary:
        return []
    g = summary["gemirec"]
    out = [""]

    def mean(label, key="recall@50"):
        vals = [v for v in summary[label]["test"][key] if v is not None]
        return float(np.mean(vals)) if vals else float("nan")

    multi = [m for m in ("mind", "comirec-sa", "comirec-dr") if m in summary]
    if multi:
        best = max(multi, key=mean)
        out.append(f"- GemiRec R@50 / best multi-interest baseline ({best}): "
                   f"{mean('gemirec') / mean(best):.3f} (target ≥ 1.10)")
    others = [m for m in summary if m != "gemirec" and not m.startswith("gemirec")]
    if others:
        best_all = max(others, key=mean)
        out.append(f"- GemiRec R@50 / best of all baselines ({best_all}): "
                   f"{mean('gemirec') / mean(best_all):.3f} (goal ≥ 1.10)")
    if "single" in summary:
        out.append(f"- GemiRec R@50 / single-vector backbone: {mean('gemirec') / mean('single'):.3f}")
    if "comirec-sa" in summary:
        ratio = np.median(g["train_seconds"]) / np.median(summary["comirec-sa"]["train_seconds"])
        out.append(f"- GemiRec train time / ComiRec-SA train time (medians): {ratio:.2f} (target ≤ 2)")
    return out


def _diagnostics_table(by_label: dict[str, list[dict]]) -> list[str]:
    """GemiRec's own health: generator top-K hit, oracle readout, dictionary usage (best epoch)."""
    rows = []
    for label, recs in by_label.items():
        diags = [r.get("diagnostics") or {} for r in recs]
        if not any(diags):
            continue
        keys = sorted({k for d in diags for k in d})
        cells = [label] + [f"{k}: {_fmt([d.get(k) for d in diags], 1.0)}" for k in keys]
        rows.append("- " + "; ".join(cells))
    if not rows:
        return []
    return ["", "GemiRec diagnostics on validation (test for next_interest_hit), at the kept epoch:",
            "top-K hit = share of targets whose interest code is among the K generated; oracle = recall",
            "when each target's own code conditions the query; code perplexity and dead-code share per",
            "level (M codes per level).", ""] + rows


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", required=True)
    p.add_argument("--models", default="all", help="comma list or 'all': " + ",".join(ALL_MODELS))
    p.add_argument("--seeds", type=int, default=1, help="number of seeds (0..n-1)")
    p.add_argument("--first-seed", type=int, default=0,
                   help="skip seeds below this one (split one campaign over two processes)")
    p.add_argument("--preset", default=None, help="config preset (default: by dataset)")
    p.add_argument("--set", action="append", default=[], help="override, e.g. train.lr=0.003")
    p.add_argument("--device", default="cpu")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    p.add_argument("--K", type=int, default=None, help="interests per user")
    p.add_argument("--C", type=int, default=None, help="GemiRec dictionary levels")
    p.add_argument("--M", type=int, default=None, help="GemiRec codes per level")
    p.add_argument("--merge", default=None,
                   help="GemiRec merge: mixture|quota|weighted|max (kept as given: no validation choice)")
    p.add_argument("--label-suffix", default="", help="appended to model labels (ablations)")
    p.add_argument("--force", action="store_true", help="ignore cached results")
    p.add_argument("--tables-only", action="store_true",
                   help="train nothing: rebuild the dataset's tables from the cache")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    models = ALL_MODELS if args.models == "all" else args.models.split(",")
    preset = args.preset or DATASET_PRESETS.get(args.dataset, "default")
    overrides = [f"train.device={args.device}", f"train.threads={args.threads}"] + list(args.set)
    if args.K is not None:
        overrides.append(f"multi.n_interests={args.K}")
    if args.C is not None:
        overrides.append(f"gemirec.n_levels={args.C}")
    if args.M is not None:
        overrides.append(f"gemirec.codebook_size={args.M}")
    if args.merge is not None:  # a merge asked for by name is kept: no validation choice over the mixture
        overrides += [f"gemirec.merge={args.merge}", "gemirec.select_on_validation=false"]
    base = load_config(preset, overrides)
    t0 = time.perf_counter()
    inter = load_dataset(args.dataset, args.data_dir)
    data = SequenceData.from_frames(inter.events, inter.items, base.data)
    console.print(f"[bold]{args.dataset}[/]: {data.n_users} users, {data.n_items} items, "
                  f"{len(data.flat)} events (loaded in {time.perf_counter() - t0:.1f}s)")
    for model in [] if args.tables_only else models:
        for seed in range(args.first_seed, args.seeds):
            cfg = replace(base, model=model, train={"seed": seed})
            label = model + args.label_suffix
            rec = run_one(args.dataset, data, cfg, label, args.force)
            console.print(
                f"{label:>22s} seed {seed}: test R@50 {100 * rec['test']['recall@50']:.2f} "
                f"R@20 {100 * rec['test']['recall@20']:.2f}  train {rec['train_seconds']:.0f}s  "
                f"test eval {rec['test_eval_seconds']:.2f}s ({rec['test_users']} users)"
            )
    records = [json.loads(f.read_text()) for f in sorted((CACHE / args.dataset).glob("*.json"))]
    records = [r for r in records if r["data_fingerprint"] == data.fingerprint()
               and r.get("cache_version") == CACHE_VERSION]
    if args.tables_only and records:  # the command that made the cached runs, not the rebuild
        args.seeds = 1 + max(r["seed"] for r in records)
    md = write_tables(args.dataset, _latest_per_label(records), _command(args), records)
    console.print(f"table: {md}")


def _latest_per_label(records: list[dict]) -> list[dict]:
    """If a label was rerun with another config, the newest config wins (per label and seed)."""
    best: dict[tuple[str, int], dict] = {}
    for r in sorted(records, key=lambda r: r["created"]):
        best[(r["label"], r["seed"])] = r
    return list(best.values())


def _command(args) -> str:
    return f"python -m benchmarks.run --dataset {args.dataset} --models <per model> --seeds {args.seeds}"


if __name__ == "__main__":
    main()
