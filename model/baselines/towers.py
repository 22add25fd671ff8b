"""Dual-tower backbone (DESIGN §2.1): item tower, causal user tower, and the two causal baselines.

The single-vector model below is exactly the user tower GemiRec shares; YouTubeDNN replaces the
transformer by the mean of the history (prefix means, so it is causal and trains on all positions).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from model.config import Config
from model.retriever import Retriever


class ItemTower(nn.Module):
    """v_i = LayerNorm(E_item[i] + mean_a E_attr[a])."""

    def __init__(self, n_items: int, attributes: torch.Tensor | None, n_attributes: int, dim: int):
        super().__init__()
        self.item = nn.Embedding(n_items + 1, dim, padding_idx=0)
        nn.init.normal_(self.item.weight, std=0.05)
        self.use_attr = attributes is not None and n_attributes > 0
        if self.use_attr:
            self.register_buffer("attributes", attributes, persistent=False)
            # EmbeddingBag averages the non-padding attributes of each DISTINCT item once: items with
            # many tags (LastFM: 31 on average) made a per-token (B, L, A, d) gather the step's main cost
            self.attr = nn.EmbeddingBag(n_attributes + 1, dim, mode="mean", padding_idx=0)
            nn.init.normal_(self.attr.weight, std=0.05)
            with torch.no_grad():
                self.attr.weight[0].zero_()
        self.norm = nn.LayerNorm(dim)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.item(ids)
        if self.use_attr:
            uniq, inverse = torch.unique(ids, return_inverse=True)
            x = x + self.attr(self.attributes[uniq])[inverse]
        return self.norm(x)


class PooledDropout(nn.Module):
    """Inverted dropout whose masks are slices of one pre-drawn random pool.

    design choice (not from the paper): on these CPUs drawing a fresh Bernoulli per element costs ~6 ms
    per (256, 20, 64) activation — a fifth of a training step. A random offset into a 4M-entry pool
    gives masks that are uniform per element and independent enough across calls, for the cost of a slice.
    """

    POOL = 1 << 22

    def __init__(self, p: float):
        super().__init__()
        self.p = p
        self._pool: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        n = x.numel()
        if self._pool is None or self._pool.device != x.device or n > self.POOL // 2:
            size = max(self.POOL, 2 * n)
            self._pool = (torch.rand(size, device=x.device) >= self.p).to(x.dtype) / (1 - self.p)
        start = int(torch.randint(0, len(self._pool) - n + 1, (1,)))
        return x * self._pool[start : start + n].view_as(x)


class Block(nn.Module):
    """Pre-norm transformer block with an explicit boolean attention mask."""

    def __init__(self, dim: int, n_heads: int, dropout: float):
        super().__init__()
        self.n_heads = n_heads
        self.ln1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.ln2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        self.drop = PooledDropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        B, L, D = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(D, dim=2)
        shape = (B, L, self.n_heads, D // self.n_heads)
        q, k, v = (t.view(shape).transpose(1, 2) for t in (q, k, v))  # (B, H, L, D/H)
        # no dropout on attention weights: on CPU it costs a Bernoulli draw per (B, H, L, L) entry and
        # took ~20 % of a training step, for no measurable gain over residual dropout alone
        att = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        x = x + self.drop(self.proj(att.transpose(1, 2).reshape(B, L, D)))
        return x + self.drop(self.mlp(self.ln2(x)))


def causal_mask(ids: torch.Tensor) -> torch.Tensor:
    """(B, 1, L, L) bool: query t sees real keys ≤ t; a padded query sees only itself (no NaN rows)."""
    L = ids.shape[1]
    tril = torch.ones(L, L, dtype=torch.bool, device=ids.device).tril()
    real = (ids > 0)[:, None, None, :]
    eye = torch.eye(L, dtype=torch.bool, device=ids.device)
    return (tril & real) | eye


def trim_left_padding(ids: torch.Tensor) -> torch.Tensor:
    """Drop the columns that are padding in every row (histories are left-padded to maxlen).

    Only for readers of the LAST position: positions are counted from the end and padded keys are masked,
    so the last output is unchanged, while a batch of short histories (Amazon users: ~8 items of 50)
    costs a fraction of the full-width transformer."""
    real = (ids > 0).any(0)
    if not bool(real.any()) or bool(real[0]):
        return ids
    return ids[:, int(real.float().argmax()):]


class CausalEncoder(nn.Module):
    """SASRec-style causal transformer over item vectors plus learned positions (design choice)."""

    def __init__(self, dim: int, n_layers: int, n_heads: int, dropout: float, maxlen: int):
        super().__init__()
        self.pos = nn.Embedding(maxlen, dim)
        nn.init.normal_(self.pos.weight, std=0.02)
        self.blocks = nn.ModuleList(Block(dim, n_heads, dropout) for _ in range(n_layers))
        self.drop = PooledDropout(dropout)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """x (B, L, d) token vectors, ids (B, L) for the mask -> (B, L, d) causal outputs."""
        L = ids.shape[1]
        h = self.drop(x + self.pos.weight[-L:][None])  # left-padded: newest item at the last position
        mask = causal_mask(ids)
        for block in self.blocks:
            h = block(h, mask)
        return self.norm(h)


class SingleVector(Retriever):
    """The SASRec-style single-vector backbone: u = last output of the causal user tower."""

    train_mode = "positions"

    def __init__(self, cfg: Config, n_items: int, attributes: torch.Tensor | None, n_attr: int):
        super().__init__(cfg)
        b = cfg.backbone
        self.items = ItemTower(n_items, attributes if b.use_attributes else None, n_attr, b.dim)
        self.encoder = CausalEncoder(b.dim, b.n_layers, b.n_heads, b.dropout, cfg.data.maxlen)

    def sequence_states(self, ids: torch.Tensor) -> torch.Tensor:
        return self.encoder(self.items(ids), ids)  # (B, L, d)

    def user_vectors(self, ids: torch.Tensor) -> torch.Tensor:
        return self.sequence_states(trim_left_padding(ids))[:, -1]

    def queries(self, ids: torch.Tensor) -> torch.Tensor:
        return self.user_vectors(ids)[:, None, :]  # (B, 1, d)

    def positions_loss(self, inputs, targets, sampler):
        states = self.sequence_states(inputs)
        real = targets > 0
        return self.softmax_loss(states[real], targets[real], sampler), {}


class YouTubeDNN(Retriever):
    """Mean pooling of the history, then a ReLU MLP (Covington et al., 2016)."""

    train_mode = "positions"

    def __init__(self, cfg: Config, n_items: int, attributes: torch.Tensor | None, n_attr: int):
        super().__init__(cfg)
        b = cfg.backbone
        self.items = ItemTower(n_items, attributes if b.use_attributes else None, n_attr, b.dim)
        self.mlp = nn.Sequential(
            nn.Linear(b.dim, 2 * b.dim), nn.ReLU(), nn.Dropout(b.dropout), nn.Linear(2 * b.dim, b.dim)
        )

    def prefix_means(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.items(ids) * (ids > 0).unsqueeze(-1)
        counts = (ids > 0).cumsum(1).clamp(min=1).unsqueeze(-1)
        return self.mlp(x.cumsum(1) / counts)  # (B, L, d): every prefix's user vector

    def queries(self, ids: torch.Tensor) -> torch.Tensor:
        return self.prefix_means(ids)[:, -1:, :]

    def positions_loss(self, inputs, targets, sampler):
        states = self.prefix_means(inputs)
        real = targets > 0
        return self.softmax_loss(states[real], targets[real], sampler), {}

    def cut_loss(self, history, target, sampler):
        # only with train.sampling=cut: one cut per user and step, as ComiRec's code trains its DNN baseline
        return self.softmax_loss(self.queries(history)[:, 0], target, sampler), {}
