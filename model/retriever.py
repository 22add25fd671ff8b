"""What every retriever shares: scoring space, the sampled-softmax objective, top-N recommendation.

A retriever maps a left-padded history (B, L) to K query vectors (B, K, d) (K = 1 for single-vector
models); items are scored by inner product in the same space, through one FAISS index per model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from model.config import Config
from model.faiss_index import ItemIndex
from model.losses import CandidateSampler, sampled_softmax_loss


@dataclass
class Recommendations:
    ranked: np.ndarray  # (U, N) dense item ids, best first
    per_interest: np.ndarray | None = None  # (U, K, N) each query's own list (collapse metrics)
    queries: np.ndarray | None = None  # (U, K, d)
    interest_codes: np.ndarray | None = None  # (U, K) GemiRec only
    interest_probs: np.ndarray | None = None  # (U, K) GemiRec only
    # GemiRec: what the merge saw, so each item can be traced to its query (model/gemirec/attribution.py)
    merge_queries: np.ndarray | None = None  # (U, K+1, d) the K interest queries, then u
    merge_weights: np.ndarray | None = None  # (U, K+1) mixture weights (1 − u_share)·p_k and u_share
    merge_lse: np.ndarray | None = None  # (U, K+1) log-partitions, mixture merge only


def merge_max(scores: np.ndarray, items: np.ndarray, n: int) -> np.ndarray:
    """ComiRec's merge: an item's score is its best score over interests; top-n distinct items.

    scores, items: (U, K, N). Vectorised: sort (user, item, -score) once, keep each pair's first row.
    """
    U = scores.shape[0]
    s = scores.reshape(U, -1)
    it = items.reshape(U, -1)
    rows = np.repeat(np.arange(U), s.shape[1])
    order = np.lexsort((-s.ravel(), it.ravel(), rows))
    r, i, v = rows[order], it.ravel()[order], s.ravel()[order]
    first = np.ones(len(r), dtype=bool)
    first[1:] = (r[1:] != r[:-1]) | (i[1:] != i[:-1])
    first &= i >= 0
    r, i, v = r[first], i[first], v[first]
    order = np.lexsort((-v, r))  # by user, best score first
    r, i = r[order], i[order]
    starts = np.searchsorted(r, np.arange(U))
    rank = np.arange(len(r)) - starts[r]
    out = np.full((U, n), -1, dtype=np.int64)
    keep = rank < n
    out[r[keep], rank[keep]] = i[keep]
    return out


class Retriever(nn.Module):
    train_mode = "positions"  # "positions" (causal, all prefixes) or "cut" (one cut per user/step)
    items: nn.Module

    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        sampling = cfg.train.sampling
        if sampling != "native":
            if sampling not in ("positions", "cut"):
                raise ValueError(f"train.sampling must be native, positions or cut, not {sampling!r}")
            own = type(self).cut_loss if sampling == "cut" else type(self).positions_loss
            if own is getattr(Retriever, own.__name__):
                raise ValueError(f"{type(self).__name__} cannot train with train.sampling={sampling!r}")
            self.train_mode = sampling

    def learning_rate(self) -> float:
        return self.cfg.train.lr

    def param_groups(self) -> list[dict]:
        """Hook: the optimiser's parameter groups (one group at learning_rate() by default)."""
        return [{"params": list(self.parameters())}]

    # ---- scoring space ------------------------------------------------------------------------
    def score_space(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=-1) if self.cfg.train.normalize else x

    def candidate_vectors(self, ids: torch.Tensor) -> torch.Tensor:
        return self.score_space(self.items(ids))

    @torch.no_grad()
    def item_matrix(self) -> np.ndarray:
        """(n, d) scoring vectors of items 1..n, for the FAISS index."""
        was = self.training
        self.eval()
        n = self.items.item.num_embeddings - 1
        ids = torch.arange(1, n + 1, device=self.items.item.weight.device)
        out = torch.cat([self.candidate_vectors(chunk) for chunk in ids.split(65536)])
        self.train(was)
        return out.float().cpu().numpy()

    def softmax_loss(self, queries, targets, sampler: CandidateSampler) -> torch.Tensor:
        return sampled_softmax_loss(
            self.score_space(queries), targets, self.candidate_vectors, sampler, self.cfg.train.temperature
        )

    # ---- training -----------------------------------------------------------------------------
    def queries(self, ids: torch.Tensor) -> torch.Tensor:  # (B, K, d)
        raise NotImplementedError

    def step_loss(self, batch, sampler: CandidateSampler):
        if self.train_mode == "positions":
            return self.positions_loss(*batch, sampler)
        return self.cut_loss(*batch, sampler)

    def positions_loss(self, inputs, targets, sampler):
        raise NotImplementedError

    def cut_loss(self, history, target, sampler):
        raise NotImplementedError

    def on_epoch_start(self, epoch: int, data) -> None:
        """Hook for staged schedules (GemiRec's warm-up → k-means → joint)."""

    def after_fit(self, data) -> None:
        """Hook: called once with the kept weights restored (e.g. to choose inference settings)."""

    def on_validation(self, epoch: int, recall50: float) -> None:
        """Hook: the validation Recall@50 measured after `epoch`."""

    def epoch_logs(self) -> dict[str, float]:
        return {}

    def selectable(self, epoch: int) -> bool:
        """This epoch's weights may be kept as the best model."""
        return True

    def may_stop(self, epoch: int) -> bool:
        """Early stopping is allowed after this epoch (staged schedules veto it during warm-up)."""
        return True

    def lr_factor(self, epoch: int, improved: bool) -> float:
        """Hook: multiply the step size by this after `epoch` (1 = keep it)."""
        return 1.0

    # ---- inference ----------------------------------------------------------------------------
    @torch.no_grad()
    def recommend(self, histories: np.ndarray, index: ItemIndex, n: int) -> Recommendations:
        was = self.training
        self.eval()
        device = next(self.parameters()).device
        q = self.score_space(self.queries(torch.as_tensor(histories, device=device)))
        self.train(was)
        q = q.float().cpu().numpy()  # (U, K, d)
        U, K, d = q.shape
        scores, items = index.search(q.reshape(U * K, d), n)
        scores, items = scores.reshape(U, K, n), items.reshape(U, K, n)
        ranked = items[:, 0, :] if K == 1 else merge_max(scores, items, n)
        return Recommendations(ranked=ranked, per_interest=items if K > 1 else None, queries=q)


class MostPopular:
    """Most popular training items for everyone (no learning)."""

    train_mode = "none"

    def __init__(self, popularity: np.ndarray):
        pop = popularity.copy()
        pop[0] = -np.inf
        self.order = np.argsort(-pop, kind="stable")

    def recommend(self, histories: np.ndarray, index: ItemIndex | None, n: int) -> Recommendations:
        top = self.order[:n]
        return Recommendations(ranked=np.tile(top, (len(histories), 1)))
