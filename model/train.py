"""One training loop for every model: sampled softmax, Adam, early stopping on validation Recall@50.

`fit` is a plain function (no Trainer hierarchy). Each epoch it evaluates the validation users through
the model's real inference path, keeps the best weights, and writes a resumable checkpoint when given a
folder, so an interrupted job reruns from its last finished epoch.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from model.config import Config, replace
from model.evaluate import evaluate
from model.losses import CandidateSampler
from model.multi_interest import MIND, ComiRecDR, ComiRecSA
from model.retriever import MostPopular
from model.sequences import SequenceData
from model.towers import SingleVector, YouTubeDNN

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
        from model.gemirec import GemiRec  # late import: GemiRec builds on this module

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
) -> FitResult:
    t = cfg.train
    if t.threads > 0:
        torch.set_num_threads(t.threads)
    if isinstance(model, MostPopular):
        return FitResult(0, float("nan"), 0, 0.0, "no training")
    device = torch.device(t.device)
    model.to(device)
    gen = torch.Generator(device=device).manual_seed(t.seed)
    rng = np.random.default_rng(t.seed)
    sampler = CandidateSampler(
        torch.as_tensor(data.item_popularity(), device=device), t.n_negatives, gen
    )
    opt = torch.optim.Adam(model.parameters(), lr=t.lr, weight_decay=t.weight_decay)
    val_set = data.eval_set(1)

    state = {"epoch": 0, "best": -1.0, "best_epoch": -1, "bad": 0, "history": [], "elapsed": 0.0}
    best_weights = copy.deepcopy(model.state_dict())
    ckpt = Path(checkpoint_dir) / "checkpoint.pt" if checkpoint_dir else None
    if ckpt is not None and ckpt.exists():
        saved = torch.load(ckpt, map_location=device, weights_only=False)
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["opt"])
        best_weights = saved["best_weights"]
        state = saved["state"]
        rng = saved["rng"]
        gen.set_state(saved["gen"].cpu())
        log.info("resumed from %s at epoch %d", ckpt, state["epoch"])

    stopped = "max_epochs"
    start = time.perf_counter() - state["elapsed"]
    while state["epoch"] < t.max_epochs:
        epoch = state["epoch"]
        model.train()
        model.on_epoch_start(epoch, data)
        batches = (
            data.window_batches(t.batch_size, rng)
            if model.train_mode == "positions"
            else data.cut_batches(t.batch_size, rng, t.cut_reps_max)
        )
        n_batches = data.steps_per_epoch(t.batch_size, model.train_mode, t.cut_reps_max)
        losses = []
        bar = tqdm(batches, total=n_batches, desc=f"{cfg.model} epoch {epoch}", disable=not progress,
                   leave=False)
        for batch in bar:
            batch = tuple(torch.as_tensor(b, device=device) for b in batch)
            loss, parts = model.step_loss(batch, sampler)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            losses.append(loss.item())
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")
        val = evaluate(model, data, val_set, batch_users=t.eval_batch_users)
        r50 = val.metrics["recall@50"]
        row = {"epoch": epoch, "loss": float(np.mean(losses)), "val_recall@50": r50,
               "val_recall@20": val.metrics["recall@20"], "seconds": time.perf_counter() - start}
        model.on_validation(epoch, r50)
        row.update(model.epoch_logs())
        state["history"].append(row)
        log.info("%s epoch %d loss %.4f val R@50 %.4f", cfg.model, epoch, row["loss"], r50)
        if on_epoch is not None:
            on_epoch(row)
        if model.selectable(epoch) and (r50 > state["best"] or state["best_epoch"] < 0):
            state.update(best=r50, best_epoch=epoch, bad=0)
            best_weights = copy.deepcopy(model.state_dict())
        else:
            state["bad"] += 1
        state["epoch"] = epoch + 1
        state["elapsed"] = time.perf_counter() - start
        if ckpt is not None:
            ckpt.parent.mkdir(parents=True, exist_ok=True)
            tmp = ckpt.with_suffix(".tmp")
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "state": state,
                        "best_weights": best_weights, "rng": rng, "gen": gen.get_state()}, tmp)
            tmp.replace(ckpt)  # atomic: a kill mid-write leaves the previous checkpoint intact
        if state["bad"] >= t.patience and state["epoch"] >= t.min_epochs and model.may_stop(epoch):
            stopped = "early_stopping"
            break
        if state["elapsed"] > t.max_time_s:
            stopped = "time_budget"
            break
    if state["best_epoch"] >= 0:
        model.load_state_dict(best_weights)
    model.eval()
    model.after_fit(data)
    return FitResult(state["best_epoch"], state["best"], state["epoch"], state["elapsed"], stopped,
                     state["history"])
