"""Why does MIND trail YouTubeDNN here? One variant of MIND at a time, same harness and cache as the campaign.

    python -m benchmarks.studies.mind_study --datasets ml-100k,simulator --seeds 3

Each variant changes one thing against the campaign's MIND (K = 4, hard argmax readout, gradients through
the last routing iteration, residual ReLU head, 1,024 shared negatives). K = 1 turns MIND into a
bilinear-pooled single vector: if that recovers YouTubeDNN's recall, what costs recall is the split into
K capsules, not training length, negatives or the head. YouTubeDNN trained on one cut per user and step
(as ComiRec's code trains it) separates the training signal from the architecture. Runs are cached in
`benchmarks/cache/<dataset>/` (they also appear in the dataset's table); the study table is written to
`benchmarks/results/mind-study.md` and read in `docs/baselines.md`.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from benchmarks.run import DATASET_PRESETS, RESULTS, console, run_one
from features.datasets import load_dataset
from model.config import load_config, replace
from model.sequences import SequenceData

# (label, model, overrides, what it tests)
VARIANTS = [
    ("youtubednn", "youtubednn", [], "reference: mean of the history, all positions"),
    ("youtubednn-cut", "youtubednn", ["train.sampling=cut"], "reference: same, one cut per user and step"),
    ("mind", "mind", [], "the campaign's MIND"),
    ("mind-k1", "mind", ["multi.n_interests=1"], "one capsule: no split into interests"),
    ("mind-k2", "mind", ["multi.n_interests=2"], "two capsules"),
    ("mind-gradall", "mind", ["multi.routing_grad=all"], "gradients through every routing iteration"),
    ("mind-nohead", "mind", ["multi.mind_head=none"], "capsules as queries, no ReLU head"),
    ("mind-neg4096", "mind", ["train.n_negatives=4096"], "4x the shared negatives"),
    ("comirec-sa", "comirec-sa", [], "reference: ComiRec-SA as in the campaign (K = 4)"),
    ("comirec-sa-k1", "comirec-sa", ["multi.n_interests=1"], "ComiRec-SA with one attention head"),
    ("mind-soft", "mind", ["multi.readout_temperature=0.07"],
     "label-aware attention readout (softmax over interests at τ = 0.07) in place of the hard argmax"),
]


def _mean(values: list[float]) -> str:
    v = 100 * np.asarray(values, dtype=float)
    return f"{v.mean():.2f} ± {v.std(ddof=1):.2f}" if len(v) > 1 else f"{v.mean():.2f}"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", default="ml-100k,simulator")
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--variants", default="all", help="comma list of labels or 'all'")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--data-dir", default=None)
    args = p.parse_args(argv)
    wanted = None if args.variants == "all" else set(args.variants.split(","))
    variants = [v for v in VARIANTS if wanted is None or v[0] in wanted]

    rows: list[str] = []
    out = RESULTS / "mind-study.json"
    summary = json.loads(out.read_text()) if out.exists() else {}
    for dataset in args.datasets.split(","):
        preset = DATASET_PRESETS.get(dataset, "default")
        base = load_config(preset, [f"train.threads={args.threads}"])
        inter = load_dataset(dataset, args.data_dir)
        data = SequenceData.from_frames(inter.events, inter.items, base.data)
        for label, model, overrides, _ in variants:
            cfg = load_config(preset, [f"train.threads={args.threads}", f"model={model}"] + overrides)
            recs = []
            for seed in range(args.seeds):
                rec = run_one(dataset, data, replace(cfg, train={"seed": seed}), label)
                recs.append(rec)
                val, test = 100 * rec["val"]["recall@50"], 100 * rec["test"]["recall@50"]
                console.print(f"{dataset} {label:>15s} seed {seed}: val R@50 {val:.2f}  test R@50 {test:.2f}"
                              f"  {rec['epochs']} epochs")
            summary.setdefault(dataset, {})[label] = {
                "val_recall@50": [r["val"]["recall@50"] for r in recs],
                "test_recall@50": [r["test"]["recall@50"] for r in recs],
                "epochs": [r["epochs"] for r in recs],
                "train_seconds": [r["train_seconds"] for r in recs],
                "query_cos": [r["test"].get("interest_cosine") for r in recs],
            }
    out.write_text(json.dumps(summary, indent=1))
    what = {label: text for label, _, _, text in VARIANTS}
    order = {label: i for i, (label, _, _, _) in enumerate(VARIANTS)}
    for dataset, by_label in summary.items():
        for label, s in sorted(by_label.items(), key=lambda kv: order.get(kv[0], len(order))):
            rows.append(f"| {dataset} | {label} | {what.get(label, '')} | {len(s['val_recall@50'])} | "
                        f"{_mean(s['val_recall@50'])} | {_mean(s['test_recall@50'])} | "
                        f"{np.median(s['epochs']):.0f} |")
    lines = [
        "# Why MIND trails YouTubeDNN: one change at a time",
        "",
        "Made by `python -m benchmarks.studies.mind_study --datasets ml-100k --seeds 3` and `python -m",
        "benchmarks.studies.mind_study --datasets simulator --seeds 1 --variants <those listed>`"
        f" ({time.strftime('%Y-%m-%d')}).",
        "R@50 in % (mean ± std over seeds); validation users decide, test users are shown for completeness.",
        "Same split, harness, budget and early stopping as the campaign (`benchmarks/results/<dataset>.md`);",
        "every run is cached with the campaign's runs, so the same commands rebuild this table at once.",
        "",
        "| dataset | variant | what changes | seeds | val R@50 | test R@50 | epochs |",
        "|---|---|---|---|---|---|---|",
    ] + rows
    (RESULTS / "mind-study.md").write_text("\n".join(lines) + "\n")
    console.print(f"table: {RESULTS / 'mind-study.md'}")


if __name__ == "__main__":
    main()
