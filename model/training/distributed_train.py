"""Train one model data-parallel: the command `torchrun` starts on every rank.

    torchrun --standalone --nproc_per_node 2 -m model.training.distributed_train \\
        --dataset simulator-tiny --preset tiny --model single --out runs/ddp

    # two machines, 4 processes each; run on both, with node 0's address
    torchrun --nnodes 2 --nproc_per_node 4 --rdzv-backend c10d --rdzv-endpoint HOST0:29400 \\
        --rdzv-id gemirec-1 -m model.training.distributed_train --dataset ml-100k --preset long --out /shared/ddp

Without torchrun (`python -m model.training.distributed_train ...`) it is ordinary single-process training.
Rank 0 writes what `model.training.pipeline.train_model` writes (`<out>/model/`, `<out>/history.json`) plus
`<out>/run.json`; `--out` must be one folder every rank can read (rank 0 checkpoints there, and a
restarted job resumes from it on every rank).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path

from features.datasets import load_dataset
from model.config import load_config
from model.training.distributed import init_from_environment, shutdown
from model.training.pipeline import train_folder, train_model

log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--dataset", help="a dataset name, e.g. simulator-tiny, ml-100k")
    source.add_argument("--folder", type=Path, help="a saved events/items folder (the flow's training set), "
                        "read without a pandas copy of the log")
    p.add_argument("--data-dir", default=None, help="folder of the public datasets (or GEMIREC_DATA_DIR)")
    p.add_argument("--preset", default="default")
    p.add_argument("--model", default="gemirec")
    p.add_argument("--set", action="append", default=[], help="config override, e.g. train.max_epochs=5")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    rank = int(os.environ.get("RANK", "0"))
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING,
                        format=f"%(asctime)s rank{rank} %(name)s %(message)s")

    parallel = init_from_environment()
    try:
        cfg = load_config(args.preset, [f"model={args.model}", *args.set])
        t0 = time.perf_counter()
        if args.folder is not None:
            outcome = train_folder(args.folder, cfg, args.out, progress=False, parallel=parallel)
        else:
            inter = load_dataset(args.dataset, args.data_dir)
            outcome = train_model(inter.events, inter.items, cfg, args.out, progress=False, parallel=parallel)
        if outcome is not None:  # rank 0, or the only process
            run = {"dataset": args.dataset or str(args.folder), "model": args.model, "preset": args.preset,
                   "world_size": parallel.world_size if parallel else 1,
                   "global_batch_size": cfg.train.batch_size, "wall_seconds": time.perf_counter() - t0,
                   "epochs": outcome.fit.epochs_run, "stopped": outcome.fit.stopped,
                   "final_train_loss": outcome.fit.history[-1]["loss"] if outcome.fit.history else None,
                   "metrics": outcome.metrics, "folder": str(outcome.folder)}
            (args.out / "run.json").write_text(json.dumps(run, indent=1))
            log.info("%s on %d process(es): test R@50 %.4f, saved %s", args.model, run["world_size"],
                     outcome.metrics["test"]["recall@50"], outcome.folder)
    finally:
        shutdown()


if __name__ == "__main__":
    main()
