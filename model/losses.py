"""Sampled softmax with in-batch plus shared uniform negatives and logQ correction.

Candidates = the distinct targets of the step ∪ `n_negatives` uniform items. An item's chance of being
a candidate is ≈ (#rows · p_pop(i) + n_neg / n); subtracting its log from every logit (positive
included) corrects the popularity bias of in-batch negatives (Yi et al., RecSys 2019).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class CandidateSampler:
    def __init__(self, popularity: torch.Tensor, n_negatives: int, generator: torch.Generator):
        # +1 smoothing so items unseen in training keep a finite correction
        pop = popularity.double().clone()
        pop[0] = 0.0
        pop[1:] += 1.0
        self.p_pop = (pop / pop.sum()).float()
        self.n_items = len(popularity) - 1
        self.n_negatives = n_negatives
        self.generator = generator

    def candidates(self, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """targets (Q,) -> candidate ids (C,), positive column per row (Q,), log q per column (C,)."""
        neg = torch.randint(
            1, self.n_items + 1, (self.n_negatives,), generator=self.generator, device=targets.device
        )
        cand, inverse = torch.unique(torch.cat([targets, neg]), return_inverse=True)
        pos_col = inverse[: len(targets)]
        expected = len(targets) * self.p_pop.to(targets.device)[cand] + self.n_negatives / self.n_items
        return cand, pos_col, torch.log(expected)


def sampled_softmax_logits(
    queries: torch.Tensor, cand_vectors: torch.Tensor, log_q: torch.Tensor, temperature: float
) -> torch.Tensor:
    """queries (Q, d), candidate vectors (C, d) -> corrected logits (Q, C)."""
    return torch.addmm(-log_q[None, :], queries, cand_vectors.T, alpha=1.0 / temperature)


def sampled_softmax_loss(
    queries: torch.Tensor,
    targets: torch.Tensor,
    item_vectors_fn,
    sampler: CandidateSampler,
    temperature: float,
) -> torch.Tensor:
    cand, pos_col, log_q = sampler.candidates(targets)
    logits = sampled_softmax_logits(queries, item_vectors_fn(cand), log_q, temperature)
    return F.cross_entropy(logits, pos_col)


def items_ahead(targets: torch.Tensor, window: int) -> torch.Tensor:
    """targets (B, L) -> (B, L, window): [..., w] is the item w steps after targets[:, t] (0 past the end)."""
    return torch.stack([F.pad(targets[:, w:], (0, w)) for w in range(window)], -1)


def window_mean(nll: torch.Tensor, ok: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Σ_w weights[w] · mean of nll[:, w] over the rows where ok[:, w] (a column with none adds 0)."""
    n = ok.sum(0)
    per_column = torch.where(ok, nll, 0.0).sum(0) / n.clamp(min=1)
    return (per_column * weights.to(nll) * (n > 0)).sum()
