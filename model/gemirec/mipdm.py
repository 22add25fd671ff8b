"""MIPDM: a generative model of the user's FUTURE interests over the dictionary (DESIGN §2.3).

Tokens x_t = W e_{m(i_t)} + sg[v_{i_t}] + pos_t go through a causal transformer (g_t); an autoregressive
head factorises p(m | g_t) = p(m_1 | g_t) Π_c p(m_c | g_t, m_<c). Trained with teacher forcing on the
code of the next item (or the next W items); inference is a beam search over levels that returns the
top-K distinct codes with renormalised probabilities.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from model.baselines.towers import CausalEncoder


class InterestGenerator(nn.Module):
    def __init__(self, dim: int, n_levels: int, codebook_size: int, interest_dim: int, n_layers: int,
                 n_heads: int, dropout: float, maxlen: int):
        super().__init__()
        self.C, self.M = n_levels, codebook_size
        self.W = nn.Linear(interest_dim, dim)
        self.encoder = CausalEncoder(dim, n_layers, n_heads, dropout, maxlen)
        # design choice (not from the paper): level c's head sees g_t plus learned embeddings of the
        # codes already chosen at levels < c
        self.prefix = nn.ModuleList(nn.Embedding(codebook_size, dim) for _ in range(n_levels - 1))
        self.heads = nn.ModuleList(
            nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, codebook_size))
            for _ in range(n_levels)
        )

    def states(self, ids: torch.Tensor, interest_emb: torch.Tensor, item_vecs: torch.Tensor) -> torch.Tensor:
        """ids (B, L), e_{m(i_t)} (B, L, C*d_q), v_{i_t} (B, L, d) -> g (B, L, d)."""
        x = self.W(interest_emb) + item_vecs.detach()
        x = x * (ids > 0).unsqueeze(-1)
        return self.encoder(x, ids)

    def level_logits(self, g: torch.Tensor, prefix_codes: torch.Tensor, level: int) -> torch.Tensor:
        """g (N, d), codes of levels < level (N, level) -> logits over M at `level`."""
        h = g
        for c in range(level):
            h = h + self.prefix[c](prefix_codes[:, c])
        return self.heads[level](h)

    def log_prob(self, g: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """Teacher-forced log p(m | g): g (N, d), codes (N, C) -> (N,)."""
        total = g.new_zeros(len(g))
        for c in range(self.C):
            logp = F.log_softmax(self.level_logits(g, codes, c), dim=-1)
            total = total + logp.gather(1, codes[:, c : c + 1]).squeeze(1)
        return total

    def window_log_prob(self, g: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """Teacher-forced log p of W targets per state: g (N, d), codes (N, W, C) -> (N, W).

        Level 1's head sees g alone, so its logits are computed once for all W targets (the window
        losses asked for them W times before: an eighth of a joint training epoch at W = 8)."""
        N, W, C = codes.shape
        logp0 = F.log_softmax(self.level_logits(g, codes.new_zeros(N, 0), 0), dim=-1)  # (N, M)
        total = logp0.gather(1, codes[:, :, 0])
        if C > 1:
            g_rep = g.unsqueeze(1).expand(N, W, -1).reshape(N * W, -1)
            flat = codes.reshape(N * W, C)
            for c in range(1, C):
                logp = F.log_softmax(self.level_logits(g_rep, flat, c), dim=-1)
                total = total + logp.gather(1, flat[:, c : c + 1]).view(N, W)
        return total

    def loss(self, g: torch.Tensor, target_codes: torch.Tensor, weight: torch.Tensor | None = None):
        """Mean negative log-likelihood of the target codes (N, C)."""
        nll = -self.log_prob(g, target_codes)
        if weight is None:
            return nll.mean()
        return (nll * weight).sum() / weight.sum().clamp(min=1e-9)

    def beam_search(self, g: torch.Tensor, k: int, beam: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-k DISTINCT code tuples per row, sorted by probability.

        g (B, d) -> codes (B, k, C), log-probabilities (B, k) (unnormalised over the kept set).
        Beam paths never merge, so the returned tuples are distinct by construction.
        """
        B = len(g)
        beam = max(beam or 4 * k, k)
        logp0 = F.log_softmax(self.level_logits(g, g.new_zeros(B, 0, dtype=torch.long), 0), -1)
        width = min(beam, self.M) if self.C > 1 else min(k, self.M)
        scores, idx = logp0.topk(width, dim=-1)  # (B, width)
        codes = idx.unsqueeze(-1)  # (B, width, 1)
        for c in range(1, self.C):
            W = codes.shape[1]
            g_rep = g.unsqueeze(1).expand(B, W, -1).reshape(B * W, -1)
            logp = F.log_softmax(self.level_logits(g_rep, codes.reshape(B * W, c), c), -1)
            total = (scores.unsqueeze(-1) + logp.view(B, W, self.M)).view(B, W * self.M)
            width = min(beam if c < self.C - 1 else k, W * self.M)
            scores, flat = total.topk(width, dim=-1)
            parent, child = flat // self.M, flat % self.M
            codes = torch.cat([codes.gather(1, parent.unsqueeze(-1).expand(-1, -1, c)),
                               child.unsqueeze(-1)], dim=-1)
        return codes[:, :k], scores[:, :k]
