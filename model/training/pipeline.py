"""Train → evaluate → save, as one domain function the CLI and the Prefect flow both call.

Input is the canonical events/items tables (DataFrames), output a self-describing model folder.
Training checkpoints into `<out>/checkpoint/`, so a killed run called again resumes.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from model.config import Config
from model.evaluation.evaluate import build_index, evaluate
from model.persistence.saved import save_model
from model.sequences import SequenceData
from model.training.train import FitResult, fit, make_model, seed_everything

if TYPE_CHECKING:
    from model.training.distributed import DataParallel

log = logging.getLogger(__name__)


@dataclass
class TrainOutcome:
    folder: Path
    metrics: dict  # {"val": {...}, "test": {...}}
    fit: FitResult


def train_model(events: pd.DataFrame, items: pd.DataFrame | None, cfg: Config, out_dir: str | Path,
                lineage: dict | None = None, progress: bool = True, keep_checkpoint: bool = False,
                parallel: DataParallel | None = None, index_kind: str = "flat") -> TrainOutcome | None:
    """`parallel`: this process is one rank of a torchrun job (model/training/distributed_train.py); only rank 0
    evaluates and saves, and the other ranks get None."""
    return train_sequences(SequenceData.from_frames(events, items, cfg.data), cfg, out_dir, lineage, progress,
                           keep_checkpoint, parallel, index_kind)


def train_folder(folder: str | Path, cfg: Config, out_dir: str | Path, **kw) -> TrainOutcome | None:
    """`train_model` on a saved events/items folder (features.events.Interactions.save, the flow's training set),
    read straight into sequence arrays: no pandas frame of the whole log (model/sequences.py from_parquet)."""
    folder = Path(folder)
    return train_sequences(SequenceData.from_parquet(folder / "events.parquet", folder / "items.parquet", cfg.data),
                           cfg, out_dir, **kw)


def train_sequences(data: SequenceData, cfg: Config, out_dir: str | Path, lineage: dict | None = None,
                    progress: bool = True, keep_checkpoint: bool = False, parallel: DataParallel | None = None,
                    index_kind: str = "flat") -> TrainOutcome | None:
    out = Path(out_dir)
    if data.n_users < 10 or data.n_items < 2:
        raise ValueError(f"too little data to train: {data.n_users} users, {data.n_items} items "
                         "(need at least 10 users and 2 items)")
    log.info("training %s on %d users, %d items, %d events", cfg.model, data.n_users, data.n_items,
             len(data.flat))
    seed_everything(cfg.train.seed)
    model = make_model(cfg, data)
    ckpt = out / "checkpoint"
    result = fit(model, data, cfg, checkpoint_dir=ckpt, progress=progress, parallel=parallel)
    if parallel is not None and not parallel.is_main:
        return None
    stage = getattr(model, "stage_reached", None)  # GemiRec only: did it leave its warm-up?
    if stage == "warmup":
        log.warning("%s stopped in its warm-up after %d epochs (warm-up takes %d to %d): the interest dictionary "
                    "never trained, so every item has the same code; raise train.max_epochs or lower "
                    "gemirec.warmup_epochs", cfg.model, result.epochs_run, cfg.gemirec.min_warmup_epochs,
                    cfg.gemirec.warmup_epochs)
    index = build_index(model)
    metrics = {
        "val": evaluate(model, data, 1, index=index).metrics,
        "test": evaluate(model, data, 2, index=index).metrics,
        "best_epoch": result.best_epoch,
        "epochs": result.epochs_run,
        "train_seconds": result.seconds,
        **({"stage_reached": stage} if stage else {}),
    }
    folder = save_model(model, data, cfg, out / "model", metrics=metrics, lineage=lineage,
                        index_kind=index_kind)
    (out / "history.json").write_text(json.dumps(result.history, indent=1))
    if not keep_checkpoint and ckpt.exists():
        shutil.rmtree(ckpt)
    return TrainOutcome(folder, metrics, result)
