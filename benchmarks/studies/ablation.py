"""GemiRec ablations (DESIGN §2.6) on one dataset, written to benchmarks/results/ablation-<dataset>.md.

    python -m benchmarks.studies.ablation --dataset ml-100k --seeds 1

Training-time variants (dictionary levels C, codes per level M) are retrained; inference-time variants
(K generated interests, merge strategy, family restriction, no MIPDM = the history's most frequent codes)
reuse the trained base model. "no IDMM" is the single-vector backbone of the main table. Trained weights
are cached under benchmarks/cache/<dataset>/models/ (not committed), results as JSON beside them;
`--rescore` evaluates the saved weights again after a change to the inference code (no retraining).
"""

from __future__ import annotations

import argparse
import json
import logging
import time

import numpy as np
import torch

from benchmarks.run import (
    CACHE,
    CACHE_VERSION,
    DATASET_PRESETS,
    RESULTS,
    console,
    run_key,
    save_weights,
    weights_path,
)
from features.datasets import load_dataset
from model.config import load_config, replace
from model.evaluation.evaluate import build_index, evaluate
from model.gemirec.diagnostics import next_interest_recovery
from model.sequences import SequenceData
from model.training.train import fit, make_model, seed_everything

# The base changed on 2026-11-28 (mixture loss over the next W_mix = 8 items); the variants trained
# before keep W_mix = 1 in their names and configs, so their cached runs stay what they were.
TRAINING_VARIANTS = {
    "base (C=1, M=16, W=8, W_mix=8)": {},
    "W_mix=1 (mixture loss on the next item only; the base before 2026-11-28)": {"mix_window": 1},
    "W=1 and W_mix=1 (generator and mixture on the next item only)": {"gen_window": 1, "mix_window": 1},
    "C=2 (16×16) with W_mix=1": {"n_levels": 2, "mix_window": 1},
    "C=3 (16×16×16) with W_mix=1": {"n_levels": 3, "mix_window": 1},
    "M=8 with W_mix=1": {"codebook_size": 8, "mix_window": 1},
    "M=64 with W_mix=1": {"codebook_size": 64, "mix_window": 1},
    "converged warm-up (until 3 epochs without gain, best weights restored)":
        {"warmup_patience": 3, "warmup_epochs": 40},
    "frozen backbone after a converged warm-up":
        {"warmup_patience": 3, "warmup_epochs": 40, "freeze_backbone": True},
}
INFERENCE_VARIANTS = {
    "K=4, mixture + u (default)": {},
    "chosen on validation": None,
    "K=1": {"K": 1},
    "K=2": {"K": 2},
    "K=8": {"K": 8},
    "K=16": {"K": 16},
    "merge=quota": {"merge": "quota"},
    "merge=weighted": {"merge": "weighted"},
    "merge=max": {"merge": "max"},
    "mixture, no u share": {"u_share": 0.0},
    "no code-family restriction": {"restrict_family": False},
    "history blend 0.5": {"history_blend": 0.5},
    "history blend 1 (weights = the history's shares)": {"history_blend": 1.0},
    "no MIPDM (history's top codes)": {"interest_source": "history"},
}


def trained_model(dataset, data, cfg, force=False):
    key = run_key(dataset, data.fingerprint(), cfg)
    path = weights_path(dataset, cfg.train.seed, key)
    seed_everything(cfg.train.seed)
    model = make_model(cfg, data)
    if path.exists() and not force:
        saved = torch.load(path, weights_only=True)
        model.load_state_dict(saved["state"])
        model.after_fit(data)  # re-run the validation choice of inference settings
        return model, saved["meta"]
    start = time.perf_counter()
    result = fit(model, data, cfg, progress=console.is_terminal)
    meta = save_weights(path, model, result, time.perf_counter() - start)
    return model, meta


def evaluate_variant(model, data, base_cfg, changes: dict | None) -> dict:
    if changes is None:  # the settings after_fit chose on validation users
        sel = model.selected or {}
        changes = {
            "K": sel.get("K", 4),
            "merge": sel.get("merge", "mixture"),
            "u_share": sel.get("u_share", 0.25),
            "history_blend": sel.get("history_blend", 0.0),
            "restrict_family": sel.get("restrict_family", True),
        }
    g = {k: v for k, v in changes.items() if k != "K"}
    model.cfg = replace(base_cfg, gemirec=g) if g else base_cfg
    model.K = changes.get("K", base_cfg.multi.n_interests)
    index = build_index(model)
    out = {
        "val": evaluate(model, data, 1, index=index).metrics,
        "test": evaluate(model, data, 2, index=index).metrics,
    }
    out["recovery"] = next_interest_recovery(model, data, 2)
    model.cfg, model.K = base_cfg, base_cfg.multi.n_interests
    out["settings"] = changes
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", required=True)
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--rescore", action="store_true",
                   help="evaluate again (with the current inference code) every run whose weights are saved")
    p.add_argument("--training", default="all",
                   help="comma list of training variants by first word ("
                   + ",".join(n.split()[0] for n in TRAINING_VARIANTS) + "), or 'all'")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    base = load_config(
        DATASET_PRESETS.get(args.dataset, "default"), ["model=gemirec", f"train.threads={args.threads}"]
    )
    inter = load_dataset(args.dataset)
    data = SequenceData.from_frames(inter.events, inter.items, base.data)
    rows = []
    short = {name.split()[0]: name for name in TRAINING_VARIANTS}
    names = list(TRAINING_VARIANTS) if args.training == "all" else args.training.split(",")
    unknown = [n for n in names if n not in short and n not in TRAINING_VARIANTS]
    if unknown:
        p.error(f"unknown training variant(s) {unknown}; choose from {list(short)}")
    names = [short.get(n, n) for n in names]
    for tname in names:
        for seed in range(args.seeds):
            cfg = replace(base, gemirec=TRAINING_VARIANTS[tname], train={"seed": seed})
            key = run_key(args.dataset, data.fingerprint(), cfg)
            res_path = CACHE / args.dataset / "ablation" / f"{key}.json"
            saved = weights_path(args.dataset, seed, key).exists()
            if res_path.exists() and not (args.rescore and saved):
                res = json.loads(res_path.read_text())
            else:
                model, meta = trained_model(args.dataset, data, cfg)
                variants = (
                    INFERENCE_VARIANTS if tname.startswith("base") else {"K=4, mixture + u (default)": {}}
                )
                res = {
                    "cache_version": CACHE_VERSION,
                    "meta": meta,
                    "seed": seed,
                    "variants": {v: evaluate_variant(model, data, cfg, ch) for v, ch in variants.items()},
                }
                res_path.parent.mkdir(parents=True, exist_ok=True)
                res_path.write_text(json.dumps(res, indent=1))
            for vname, out in res["variants"].items():
                if not tname.startswith("base") and vname != "K=4, mixture + u (default)":
                    continue  # W_mix=1 was the base once: its cached run holds every inference variant
                rows.append((tname, vname, seed, out, res["meta"]))
                console.print(
                    f"{tname} | {vname} | seed {seed}: test R@50 {100 * out['test']['recall@50']:.2f}"
                )
    command = f"python -m benchmarks.studies.ablation --dataset {args.dataset}"
    if args.training != "all":
        command += f" --training {args.training}"
    if args.seeds != 1:
        command += f" --seeds {args.seeds}"
    write_table(args.dataset, rows, base.gemirec.codebook_size, command)


def _codes_per_level(tname: str, base_m: int) -> int:
    return TRAINING_VARIANTS.get(tname, {}).get("codebook_size", base_m)


def _dictionary_health(diagnostics: dict, m: int) -> tuple[str, bool]:
    """'L1 14.5/16, 0 % dead; L2 …' and whether every level clears issue 3's bar (≤ 10 % of the codes dead,
    usage perplexity ≥ half of M)."""
    cells, ok = [], True
    for level in range(1, 10):
        ppl, dead = diagnostics.get(f"code_perplexity_l{level}"), diagnostics.get(f"dead_code_share_l{level}")
        if ppl is None:
            break
        cells.append(f"L{level} {ppl:.1f}/{m}, {100 * dead:.0f} % dead")
        ok = ok and dead <= 0.10 and ppl >= 0.5 * m
    return "; ".join(cells) or "–", ok and bool(cells)


def write_table(dataset, rows, base_m: int = 16, command: str = ""):
    groups: dict[tuple[str, str], list] = {}
    for tname, vname, _seed, out, meta in rows:
        groups.setdefault((tname, vname), []).append((out, meta))

    def f(vals, scale=100.0):
        v = np.asarray([x for x in vals if x is not None and np.isfinite(x)]) * scale
        if len(v) == 0:
            return "–"
        return f"{v.mean():.2f} ± {v.std(ddof=1):.2f}" if len(v) > 1 else f"{v.mean():.2f}"

    lines = [
        f"# GemiRec ablations on {dataset} (test users; validation R@50 shown for choosing)",
        "",
        f"Made by `{command or f'python -m benchmarks.studies.ablation --dataset {dataset}'}`. Recall/NDCG in %.",
        "Next-interest hit: the category of the next item is among the K generated interests' "
        "majority categories (on the simulator: the planted topic).",
        "",
        "| trained as | inference | seeds | val R@50 | test R@50 | test R@20 | NDCG@50 | Unique@50 | "
        "next-interest hit | top-K hit (val) | oracle R@50 (val) | dictionary (perplexity/M, dead) "
        "| train s |",
        "|" + "---|" * 13,
    ]
    for (tname, vname), items in groups.items():
        outs = [o for o, _ in items]
        metas = [m for _, m in items]
        lines.append(
            "| "
            + " | ".join(
                [
                    tname,
                    vname,
                    str(len(items)),
                    f([o["val"]["recall@50"] for o in outs]),
                    f([o["test"]["recall@50"] for o in outs]),
                    f([o["test"]["recall@20"] for o in outs]),
                    f([o["test"]["ndcg@50"] for o in outs]),
                    f([o["test"].get("unique_ratio@50") for o in outs]),
                    f([o["recovery"]["next_interest_hit"] for o in outs]),
                    f([m["diagnostics"].get("topk_hit") for m in metas]),
                    f([m["diagnostics"].get("oracle_recall@50") for m in metas]),
                    _dictionary_health(metas[0]["diagnostics"], _codes_per_level(tname, base_m))[0],
                    f"{np.median([m['train_seconds'] for m in metas]):.0f}",
                ]
            )
            + " |"
        )
    verdicts = []
    for tname in dict.fromkeys(t for t, _ in groups):
        metas = [m for (t, _), items in groups.items() if t == tname for _, m in items]
        ok = all(_dictionary_health(m["diagnostics"], _codes_per_level(tname, base_m))[1] for m in metas)
        verdicts.append(f"- {tname}: {'PASS' if ok else 'FAIL'}")
    lines += ["", "Dictionary collapse bar (issue 3: at every level at most 10 % of the M codes dead and",
              "usage perplexity over items at least M / 2), per trained variant, every seed:", ""] + verdicts
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"ablation-{dataset}.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
