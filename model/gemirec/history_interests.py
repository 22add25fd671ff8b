"""Interests read off a history's own item codes, with no generator.

The no-MIPDM ablation takes the history's most frequent code paths as its K interests; the history blend
(`gemirec.history_blend`) weighs each generated interest by the history's share of its level-1 family.
"""

from __future__ import annotations

import torch


def flat_codes(codes, m: int):
    """(..., C) code paths of m codes per level -> (...) one integer per path (numpy or torch)."""
    flat = codes[..., 0]
    for c in range(1, codes.shape[-1]):
        flat = flat * m + codes[..., c]
    return flat


def history_interests(item_codes: torch.Tensor, ids: torch.Tensor, m: int, k: int
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """The k most frequent code paths of each history (B, L) -> codes (B, k, C), weights ∝ frequency."""
    codes = item_codes[ids]  # (B, L, C)
    n_levels = codes.shape[-1]
    n_paths = m**n_levels
    counts = torch.zeros(len(ids), n_paths, device=ids.device)
    counts.scatter_add_(1, flat_codes(codes, m), (ids > 0).float())
    top, idx = counts.topk(min(k, n_paths), dim=1)
    out = torch.stack([(idx // m ** (n_levels - 1 - c)) % m for c in range(n_levels)], -1)
    return out, (top + 1e-3) / (top + 1e-3).sum(1, keepdim=True)


def history_share(item_codes: torch.Tensor, ids: torch.Tensor, codes: torch.Tensor, m: int) -> torch.Tensor:
    """log share of each history's items (B, L) in each interest's level-1 family (smoothed): (B, K)."""
    fam = item_codes[ids][..., 0]  # (B, L)
    count = torch.zeros(len(ids), m, device=ids.device)
    count.scatter_add_(1, fam, (ids > 0).float())
    f = count.gather(1, codes[:, :, 0]) + 1e-3
    return torch.log(f / f.sum(1, keepdim=True))
