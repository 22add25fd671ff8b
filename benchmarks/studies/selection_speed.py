"""How long GemiRec's choice of its merge settings on validation users takes: one pass (model/gemirec/selection.py)
against one `evaluate` per option, and the single-list merge `top_distinct` against `merge_max`.

    python -m benchmarks.studies.selection_speed --dataset amazon-beauty-s3rec

Speed does not depend on training, so GemiRec is freshly initialised and put in its joint stage (k-means
dictionary, code table), as in benchmarks/studies/harness_speed.py. Both ways score the same 24 options and must
agree; the script checks that they do before it prints the ratio. Medians of `--repeats` runs, measured
alternately in one process.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from benchmarks.run import DATASET_PRESETS
from features.datasets import load_dataset
from model.config import load_config, replace
from model.evaluation.evaluate import build_index
from model.gemirec.mirm import top_distinct
from model.gemirec.selection import grid_recall, recall_per_option, settings_grid
from model.retriever import merge_max
from model.sequences import SequenceData
from model.training.train import make_model, seed_everything


def _timed(fn):
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="amazon-beauty-s3rec")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    base = load_config(DATASET_PRESETS.get(args.dataset, "default"))
    inter = load_dataset(args.dataset)
    data = SequenceData.from_frames(inter.events, inter.items, base.data)
    seed_everything(0)
    model = make_model(replace(base, model="gemirec"), data)
    model.on_epoch_start(base.gemirec.warmup_epochs, data)  # k-means + code table: the joint stage
    model.eval()
    model._in_fit = False  # as after training: the partition is exact up to partition_exact_max items
    index = build_index(model)
    grid = settings_grid(base.multi.n_interests)
    print(f"{args.dataset}: {len(data.eval_set(1))} validation users, {data.n_items} items, "
          f"{len(grid)} options, torch threads {torch.get_num_threads()}")
    one_pass, per_option = [], []
    for _ in range(args.repeats):
        t, fast = _timed(lambda: grid_recall(model, data, grid, index))
        one_pass.append(t)
        t, slow = _timed(lambda: recall_per_option(model, data, grid, index))
        per_option.append(t)
        np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-12)  # the speed-up changes no figure
    a, b = statistics.median(per_option), statistics.median(one_pass)
    print(f"  one evaluate per option: median {a:.2f} s (runs: {', '.join(f'{t:.2f}' for t in per_option)})")
    print(f"  one pass (selection.py): median {b:.2f} s (runs: {', '.join(f'{t:.2f}' for t in one_pass)})")
    print(f"  ratio {a / b:.1f}x; the 24 recalls agree to 1e-12")

    # the mixture's single list per user: K + 1 = 9 queries of 50 items (K = 8, the grid's largest)
    rng = np.random.default_rng(0)
    users, width = 2048, (2 * base.multi.n_interests + 1) * 50
    items = rng.integers(0, data.n_items, (users, width))
    scores = rng.random((users, width)).astype(np.float32)
    t_top, t_max = [], []
    for _ in range(args.repeats):
        t, x = _timed(lambda: top_distinct(scores, items, 50))
        t_top.append(t)
        t, y = _timed(lambda: merge_max(scores[:, None], items[:, None], 50))
        t_max.append(t)
        np.testing.assert_array_equal(x, y)
    a, b = statistics.median(t_max), statistics.median(t_top)
    print(f"{users} users x {width} scored items -> top 50 distinct: merge_max {a * 1000:.0f} ms, "
          f"top_distinct {b * 1000:.0f} ms, ratio {a / b:.1f}x (same lists)")


if __name__ == "__main__":
    main()
