"""How long the evaluation harness takes on one dataset's test users (target: amazon-video < 10 s, K = 4).

    python -m benchmarks.studies.harness_speed --dataset amazon-video-sasrec

Speed does not depend on training, so the models are freshly initialised (GemiRec is put in its joint
stage with a k-means dictionary, so its full inference path — generator, K queries, family restriction,
exact mixture — runs). Prints the median of `--repeats` runs per model, index build included.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from features.datasets import load_dataset
from model.config import load_config, replace
from model.evaluation.evaluate import evaluate
from model.sequences import SequenceData
from model.training.train import make_model, seed_everything


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="amazon-video-sasrec")
    p.add_argument("--preset", default="amazon")
    p.add_argument("--models", default="single,comirec-sa,gemirec")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    base = load_config(args.preset)
    inter = load_dataset(args.dataset)
    data = SequenceData.from_frames(inter.events, inter.items, base.data)
    es = data.eval_set(2)
    print(f"{args.dataset}: {len(es)} test users, {data.n_items} items, K = {base.multi.n_interests}, "
          f"torch threads {torch.get_num_threads()}")
    for name in args.models.split(","):
        seed_everything(0)
        model = make_model(replace(base, model=name), data)
        if name.startswith("gemirec"):
            model.on_epoch_start(base.gemirec.warmup_epochs, data)  # k-means + code table: joint stage
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            evaluate(model, data, es)
            times.append(time.perf_counter() - start)
        print(f"{name:>12s}: median {statistics.median(times):.2f} s  (runs: "
              + ", ".join(f"{t:.2f}" for t in times) + ")")


if __name__ == "__main__":
    main()
