"""One training loop for every model: sampled softmax, Adam, early stopping on validation Recall@50.

`fit` is a plain function (no Trainer hierarchy). Each epoch it evaluates the validation users through
the model's real inference path, keeps the best weights, and writes a resumable checkpoint when given a
folder, so an interrupted job reruns from its last finished epoch.
"""

from __future__ import annotations

import copy
import json
import logging
import pickle
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from tqdm.auto import tqdm

from model.baselines.multi_interest import MIND, ComiRecDR, ComiRecSA
from model.baselines.towers import SingleVector, YouTubeDNN
from model.config import Config, replace
from model.evaluation.evaluate import evaluate
from model.losses import CandidateSampler
from model.retriever import MostPopular
from model.sequences import SequenceData

if TYPE_CHECKING:  # torch.distributed is loaded only by a data-parallel run
    from model.training.distributed import DataParallel

log = logging.getLogger(__name__)

BASELINES = {
    "mostpop": None,
    "youtubednn": YouTubeDNN,
    "single": SingleVector,
    "mind": MIND,
    "comirec-sa": ComiRecSA,
    "comirec-dr": ComiRecDR,
}


@dataclass
class FitResult:
    best_epoch: int
    best_val_recall50: float
    epochs_run: int
    seconds: float
    stopped: str
    history: list[dict] = field(default_factory=list)


def make_model(cfg: Config, data: SequenceData):
    if cfg.model == "mostpop":
        return MostPopular(data.item_popularity())
    return build_from_catalogue(cfg, data.n_items, data.item_attributes, data.n_attributes)


def build_from_catalogue(cfg: Config, n_items: int, attributes: np.ndarray, n_attributes: int):
    """Construct an untrained network from the catalogue alone (also how a saved folder is loaded)."""
    name = cfg.model
    attrs = torch.as_tensor(attributes) if n_attributes > 0 else None
    if name == "gemirec-no-idmm":  # ablation: without the dictionary GemiRec is its backbone
        return SingleVector(cfg, n_items, attrs, n_attributes)
    if name in ("gemirec", "gemirec-no-mipdm"):
        from model.gemirec.gemirec import GemiRec  # late import: GemiRec builds on this module

        if name == "gemirec-no-mipdm":  # ablation: interests = the history's most frequent codes
            cfg = replace(cfg, gemirec={"interest_source": "history"})
        return GemiRec(cfg, n_items, attrs, n_attributes)
    if name not in BASELINES or BASELINES[name] is None:
        known = sorted(BASELINES) + ["gemirec", "gemirec-no-idmm", "gemirec-no-mipdm"]
        raise ValueError(f"unknown model {name!r}; known: {known}")
    return BASELINES[name](cfg, n_items, attrs, n_attributes)


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)


def fit(
    model,
    data: SequenceData,
    cfg: Config,
    checkpoint_dir: str | Path | None = None,
    progress: bool = True,
    on_epoch=None,
    parallel: DataParallel | None = None,
) -> FitResult:
    """Train `model` in place. With `parallel` (a rank under torchrun, model/training/distributed.py) each rank
    trains on its shard of every epoch and rank 0 alone evaluates, keeps, checkpoints and decides;
    without it (the default) nothing below differs from single-process training."""
    t = cfg.train
    if t.threads > 0:
        torch.set_num_threads(t.threads)
    if isinstance(model, MostPopular):
        return FitResult(0, float("nan"), 0, 0.0, "no training")
    if parallel is not None and cfg.model.startswith("gemirec") and cfg.gemirec.lr_decay != 1.0:
        raise ValueError("gemirec.lr_decay needs every rank to see validation; data-parallel training "
                         "validates on rank 0 only: leave lr_decay at 1")
    device = torch.device(t.device)
    model.to(device)
    gen = torch.Generator(device=device).manual_seed(t.seed)
    rng = np.random.default_rng(t.seed)
    sampler = CandidateSampler(
        torch.as_tensor(data.item_popularity(), device=device), t.n_negatives, gen
    )
    opt = torch.optim.Adam(model.param_groups(), lr=model.learning_rate(), weight_decay=t.weight_decay)
    # data-parallel: the DDP-wrapped step all-reduces gradients; the sampler's generator is seeded alike
    # on every rank, so the ranks' half batches share negatives as one process's whole batch would
    step_loss = model.step_loss if parallel is None else parallel.wrap(model)
    val_set = data.eval_set(1)

    state = {"epoch": 0, "best": -1.0, "best_epoch": -1, "bad": 0, "history": [], "elapsed": 0.0}
    best_weights = copy.deepcopy(model.state_dict())
    ckpt = Path(checkpoint_dir) / "checkpoint.pt" if checkpoint_dir else None
    saved = _read_checkpoint(ckpt, device) if ckpt is not None else None
    if saved is not None:
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["opt"])
        best_weights = saved["best_weights"]
        state = saved["state"]
        rng = np.random.default_rng()
        rng.bit_generator.state = saved["rng"]
        gen.set_state(saved["gen"].cpu())
        log.info("resumed from %s at epoch %d", ckpt, state["epoch"])

    stopped = "max_epochs"
    start = time.perf_counter() - state["elapsed"]
    while state["epoch"] < t.max_epochs:
        epoch = state["epoch"]
        model.train()
        model.on_epoch_start(epoch, data)
        batch_size, order = t.batch_size, None
        if parallel is not None:  # this rank's shard, at its share of the global batch
            parallel.sync(model)
            batch_size = parallel.local_batch_size(t.batch_size)
            order, rng = parallel.epoch_order(data, model.train_mode, epoch, t.seed, t.cut_reps_max)
        batches = (
            data.window_batches(batch_size, rng, order)
            if model.train_mode == "positions"
            else data.cut_batches(batch_size, rng, t.cut_reps_max, order)
        )
        n_batches = (data.steps_per_epoch(t.batch_size, model.train_mode, t.cut_reps_max) if order is None
                     else int(np.ceil(len(order) / batch_size)))
        losses = []
        bar = tqdm(batches, total=n_batches, desc=f"{cfg.model} epoch {epoch}", disable=not progress,
                   leave=False)
        for batch in bar:
            batch = tuple(torch.as_tensor(b, device=device) for b in batch)
            loss, parts = step_loss(batch, sampler)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            losses.append(loss.item())
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")
        epoch_loss = float(np.mean(losses)) if parallel is None else parallel.mean(losses)
        if parallel is not None and not parallel.is_main:  # rank 0 evaluates; wait for its decision
            state["epoch"] = epoch + 1
            decision = parallel.decide(model)
            if decision:
                stopped = decision
                break
            continue
        val = evaluate(model, data, val_set, batch_users=t.eval_batch_users)
        r50 = val.metrics["recall@50"]
        row = {"epoch": epoch, "loss": epoch_loss, "val_recall@50": r50,
               "val_recall@20": val.metrics["recall@20"], "seconds": time.perf_counter() - start}
        model.on_validation(epoch, r50)
        row.update(model.epoch_logs())
        state["history"].append(row)
        log.info("%s epoch %d loss %.4f val R@50 %.4f", cfg.model, epoch, row["loss"], r50)
        if on_epoch is not None:
            on_epoch(row)
        improved = model.selectable(epoch) and (r50 > state["best"] or state["best_epoch"] < 0)
        if improved:
            state.update(best=r50, best_epoch=epoch, bad=0)
            best_weights = copy.deepcopy(model.state_dict())
        else:
            state["bad"] += 1
        factor = model.lr_factor(epoch, improved)
        for group in opt.param_groups:  # kept in the optimiser's state, so a resumed run goes on from it
            group["lr"] *= factor
        state["epoch"] = epoch + 1
        state["elapsed"] = time.perf_counter() - start
        if ckpt is not None:
            ckpt.parent.mkdir(parents=True, exist_ok=True)
            tmp = ckpt.with_suffix(".tmp")
            # tensors and plain values only (numpy scalars in the loop state become floats through JSON,
            # the numpy generator is kept as its state dict), so a resume reads it with weights_only=True:
            # runs_dir is a deployment parameter, and a pickled checkpoint in it would run any code
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(),
                        "state": json.loads(json.dumps(state, default=float)), "best_weights": best_weights,
                        "rng": rng.bit_generator.state, "gen": gen.get_state()}, tmp)
            tmp.replace(ckpt)  # atomic: a kill mid-write leaves the previous checkpoint intact
        decision = ""
        if state["bad"] >= t.patience and state["epoch"] >= t.min_epochs and model.may_stop(epoch):
            decision = "early_stopping"
        elif state["elapsed"] > t.max_time_s:
            decision = "time_budget"
        if parallel is not None:
            parallel.decide(model, decision)
        if decision:
            stopped = decision
            break
    if parallel is not None and not parallel.is_main:  # rank 0 holds the kept model and the history
        return FitResult(-1, float("nan"), state["epoch"], time.perf_counter() - start, stopped)
    if state["best_epoch"] >= 0:
        model.load_state_dict(best_weights)
    model.eval()
    model.after_fit(data)
    return FitResult(state["best_epoch"], state["best"], state["epoch"], state["elapsed"], stopped,
                     state["history"])


def _read_checkpoint(ckpt: Path, device) -> dict | None:
    """The checkpoint's tensors and plain values (torch.load with weights_only=True: no pickled objects);
    None when there is none, or one in an older pickled format, which is not trusted: training restarts."""
    if not ckpt.exists():
        return None
    try:
        return torch.load(ckpt, map_location=device, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError) as e:
        log.warning("not resuming from %s: it holds more than tensors and plain values (%s)", ckpt,
                    str(e).splitlines()[0])
        return None
