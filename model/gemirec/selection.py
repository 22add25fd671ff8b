"""GemiRec's inference settings, chosen on validation users (DESIGN §2.4: "chosen on validation data").

After training, the mixture merge's K, share of u, history blend β and family restriction are picked by
validation Recall@50 over a small grid; test users are never looked at. Every option scores exactly what
`evaluate` would give a model set to it, but from one pass: the generator, the index searches and the
log-partitions depend only on K (the lists also on the restriction), so they run once per K, and each
option then costs a weighting of per-query probabilities and a sort. On amazon-beauty-s3rec's validation
users that is 7x faster than one `evaluate` per option, with the same 24 recalls
(`python -m benchmarks.studies.selection_speed`, benchmarks/results/selection_speed.md).
"""

from __future__ import annotations

import numpy as np
import torch

from model.baselines.towers import trim_left_padding
from model.evaluation import metrics as M
from model.evaluation.evaluate import build_index, evaluate, filter_history
from model.gemirec.mirm import (
    mixture_weights,
    prefer_restricted,
    query_probabilities,
    top_distinct,
    weigh_mixture,
)
from model.sequences import SequenceData

RECALL_AT = 50
BATCH_USERS = 1024  # evaluate's default batch: the same batches give the same floating-point results


def settings_grid(base_k: int) -> list[dict]:
    # design choice (not from the paper): the mixture merge only (quota, in this grid until 2026-11-28,
    # was never chosen in the 12 campaign runs); the history blend and the family restriction joined it
    return [{"n_interests": k, "u_share": share, "history_blend": blend, "restrict_family": restrict}
            for k in (base_k, 2 * base_k) for share in (0.25, 0.5) for blend in (0.0, 0.5, 1.0)
            for restrict in (True, False)]


@torch.no_grad()
def grid_recall(model, data: SequenceData, grid: list[dict], index=None) -> list[float]:
    """Validation Recall@50 of the mixture merge under each option of `grid`, in its order."""
    index = index if index is not None else build_index(model)
    val = data.eval_set(1)
    filt = data.cfg.filter_history
    fetch = RECALL_AT + (data.cfg.maxlen if filt else 0)
    tau = model.cfg.train.temperature
    per_option: list[list[np.ndarray]] = [[] for _ in grid]
    was = model.training
    model.eval()
    for k in sorted({o["n_interests"] for o in grid}):
        for lo in range(0, len(val), BATCH_USERS):
            hist, targets = val.histories[lo:lo + BATCH_USERS], val.targets[lo:lo + BATCH_USERS]
            ids = trim_left_padding(torch.as_tensor(hist, device=model.item_codes.device))
            u, codes, logp = model.generated(ids, k)
            all_q, codes_np = model.query_matrix(u, codes), codes.cpu().numpy()
            lse = None  # an exact partition is the same for both restrictions: query_lists reuses it
            for restrict in sorted({o["restrict_family"] for o in grid if o["n_interests"] == k}):
                _, items, allowed, item_matrix, lse = model.query_lists(all_q, codes_np, index, fetch,
                                                                        restrict, mixture=True, exact_lse=lse)
                flat = items.reshape(len(items), -1)
                probs_q = query_probabilities(all_q, flat, item_matrix, lse, tau,
                                              allowed(flat) if allowed is not None else None)
                for i, o in enumerate(grid):
                    if o["n_interests"] != k or o["restrict_family"] != restrict:
                        continue
                    probs = model.interest_probs(ids, codes, logp, o["history_blend"]).float().cpu().numpy()
                    p = weigh_mixture(probs_q, mixture_weights(probs, o["u_share"]), flat)
                    ranked = top_distinct(p, flat, fetch)
                    ranked = filter_history(ranked, hist, RECALL_AT) if filt else ranked[:, :RECALL_AT]
                    hits = M.hits_matrix(ranked, targets)
                    per_option[i].append(M.recall_at(hits, targets, RECALL_AT))
    model.train(was)
    return [float(np.nanmean(np.concatenate(r))) for r in per_option]


def recall_per_option(model, data: SequenceData, grid: list[dict], index) -> list[float]:
    """The reference `grid_recall` must equal: one full `evaluate` per option, the model set to it and
    restored afterwards (24 evaluations; what selection did before the one-pass scorer)."""
    saved = model.cfg, model.K
    try:
        out = []
        for option in grid:
            model.apply_choice(option)
            out.append(evaluate(model, data, 1, index=index).metrics["recall@50"])
        return out
    finally:
        model.cfg, model.K = saved


def choose_settings(model, data: SequenceData) -> tuple[float, dict]:
    """-> (validation R@50, option) of the chosen settings (retrieval.prefer_restricted breaks near-ties)."""
    grid = settings_grid(model.cfg.multi.n_interests)
    scored = list(zip(grid_recall(model, data, grid), grid))
    return prefer_restricted(scored, model.cfg.gemirec.restrict_tolerance)
