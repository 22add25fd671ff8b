"""Multi-interest baselines: MIND (Li et al., 2019), ComiRec-SA and ComiRec-DR (Cen et al., 2020).

Their interest extraction looks at the whole history at once (not causal), so they train on one cut
per user and step. Training reads out the interest closest to the target (ComiRec's hard argmax, which
ComiRec's MIND implementation uses too); inference merges the K per-interest lists by max score.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from model.baselines.towers import ItemTower
from model.config import Config
from model.retriever import Retriever


def squash(z: torch.Tensor) -> torch.Tensor:
    norm2 = (z * z).sum(-1, keepdim=True)
    return norm2 / (1 + norm2) * z / torch.sqrt(norm2 + 1e-9)


class _MultiInterest(Retriever):
    train_mode = "cut"

    def __init__(self, cfg: Config, n_items: int, attributes: torch.Tensor | None, n_attr: int):
        super().__init__(cfg)
        b = cfg.backbone
        self.K = cfg.multi.n_interests
        self.items = ItemTower(n_items, attributes if b.use_attributes else None, n_attr, b.dim)

    def cut_loss(self, history, target, sampler):
        interests = self.queries(history)  # (B, K, d)
        with torch.no_grad():
            tv = self.candidate_vectors(target)  # (B, d)
        t = self.cfg.multi.readout_temperature
        if t > 0:  # MIND's label-aware attention: every interest learns, the closest ones most
            att = torch.softmax(torch.einsum("bkd,bd->bk", self.score_space(interests), tv) / t, dim=1)
            chosen = torch.einsum("bk,bkd->bd", att, interests)
        else:
            pick = torch.einsum("bkd,bd->bk", self.score_space(interests).detach(), tv).argmax(1)
            chosen = interests[torch.arange(len(target)), pick]
        return self.softmax_loss(chosen, target, sampler), {}


class ComiRecSA(_MultiInterest):
    """A = softmax(W2 tanh(W1 Hᵀ)) over positions, one head per interest; V_u = A H."""

    def __init__(self, cfg: Config, n_items: int, attributes: torch.Tensor | None, n_attr: int):
        super().__init__(cfg, n_items, attributes, n_attr)
        d = cfg.backbone.dim
        self.pos = nn.Embedding(cfg.data.maxlen, d)
        nn.init.normal_(self.pos.weight, std=0.02)
        self.w1 = nn.Linear(d, cfg.multi.sa_hidden, bias=False)
        self.w2 = nn.Linear(cfg.multi.sa_hidden, self.K, bias=False)

    def queries(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.items(ids)  # (B, L, d)
        L = ids.shape[1]
        logits = self.w2(torch.tanh(self.w1(h + self.pos.weight[-L:][None])))  # (B, L, K)
        logits = logits.masked_fill((ids == 0).unsqueeze(-1), float("-inf"))
        att = torch.softmax(logits, dim=1).nan_to_num(0.0)
        return torch.einsum("blk,bld->bkd", att, h)


class _Routing(_MultiInterest):
    """Dynamic routing from history items (low capsules) to K interest capsules."""

    init_random = False

    def __init__(self, cfg: Config, n_items: int, attributes: torch.Tensor | None, n_attr: int):
        super().__init__(cfg, n_items, attributes, n_attr)
        if cfg.multi.routing_grad not in ("last", "all"):
            raise ValueError(f"multi.routing_grad must be last or all, not {cfg.multi.routing_grad!r}")

    def route(self, u_hat: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """u_hat (B, K, L, d) predictions of each item for each interest -> (B, K, d) capsules."""
        B, K, L, _ = u_hat.shape
        real = (ids > 0)[:, None, :]  # (B, 1, L)
        if self.init_random:
            logits = self.b_init[None, :, -L:].expand(B, K, L)
        else:
            logits = torch.zeros(B, K, L, device=ids.device)
        # ComiRec's code lets gradients flow only through the last iteration; routing_grad="all" keeps them
        u_det = u_hat if self.cfg.multi.routing_grad == "all" else u_hat.detach()
        for it in range(self.cfg.multi.routing_iters):
            w = torch.softmax(logits, dim=1) * real  # each item spreads over interests
            last = it == self.cfg.multi.routing_iters - 1
            z = torch.einsum("bkl,bkld->bkd", w, u_hat if last else u_det)
            v = squash(z)
            if not last:
                logits = logits + torch.einsum("bkd,bkld->bkl", v, u_det)
        return v


class MIND(_Routing):
    """B2I routing with one shared bilinear map and fixed random routing-logit init, then a ReLU layer."""

    init_random = True

    def __init__(self, cfg: Config, n_items: int, attributes: torch.Tensor | None, n_attr: int):
        super().__init__(cfg, n_items, attributes, n_attr)
        d = cfg.backbone.dim
        self.S = nn.Linear(d, d, bias=False)
        self.register_buffer("b_init", torch.randn(self.K, cfg.data.maxlen))
        self.head = cfg.multi.mind_head
        if self.head not in ("residual", "mlp", "none"):
            raise ValueError(f"multi.mind_head must be residual, mlp or none, not {self.head!r}")
        self.out = nn.Sequential(nn.Linear(d, 4 * d), nn.ReLU(), nn.Linear(4 * d, d))

    def queries(self, ids: torch.Tensor) -> torch.Tensor:
        u = self.S(self.items(ids))  # (B, L, d)
        caps = self.route(u[:, None].expand(-1, self.K, -1, -1), ids)
        if self.head == "none":
            return caps
        if self.head == "mlp":
            return self.out(caps)
        return caps + self.out(caps)  # residual keeps the capsule direction (design choice)


class ComiRecDR(_Routing):
    """Routing with one bilinear map per interest and zero-initialised logits."""

    def __init__(self, cfg: Config, n_items: int, attributes: torch.Tensor | None, n_attr: int):
        super().__init__(cfg, n_items, attributes, n_attr)
        d = cfg.backbone.dim
        self.W = nn.Parameter(torch.randn(self.K, d, d) * d**-0.5)

    def queries(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.items(ids)  # (B, L, d)
        u_hat = torch.einsum("kde,ble->bkld", self.W, h)  # (B, K, L, d)
        return self.route(u_hat, ids)
