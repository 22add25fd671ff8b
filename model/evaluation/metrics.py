"""Ranking metrics of DESIGN §3, per user, vectorised over a batch of users.

Conventions: `ranked` is (U, N) dense item ids in rank order (-1 = empty slot); `targets` is (U, T)
with -1 padding. Every function returns one value per user; averaging is the caller's choice.
"""

from __future__ import annotations

import numpy as np


def hits_matrix(ranked: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """(U, N) bool: is the item at each rank one of the user's targets."""
    valid_t = targets >= 0
    # (U, N, T) comparison is fine for the sizes here (N ≤ 200, T ≤ a few hundred)
    eq = (ranked[:, :, None] == targets[:, None, :]) & valid_t[:, None, :]
    return eq.any(axis=2) & (ranked >= 0)


def recall_at(hits: np.ndarray, targets: np.ndarray, n: int) -> np.ndarray:
    """|top-n ∩ T| / |T|."""
    n_t = np.maximum((targets >= 0).sum(axis=1), 1)
    return hits[:, :n].sum(axis=1) / n_t


def hit_rate_at(hits: np.ndarray, n: int) -> np.ndarray:
    return hits[:, :n].any(axis=1).astype(np.float64)


def ndcg_at(hits: np.ndarray, targets: np.ndarray, n: int) -> np.ndarray:
    """Standard NDCG: gain 1/log2(rank+1) by position in the list; IDCG over min(n, |T|) positions."""
    discounts = 1.0 / np.log2(np.arange(2, n + 2))
    dcg = (hits[:, :n] * discounts[None, : hits[:, :n].shape[1]]).sum(axis=1)
    n_ideal = np.minimum((targets >= 0).sum(axis=1), n)
    ideal_cum = np.concatenate([[0.0], np.cumsum(discounts)])
    idcg = ideal_cum[n_ideal]
    return np.divide(dcg, idcg, out=np.zeros_like(dcg), where=idcg > 0)


def diversity_at(ranked: np.ndarray, item_category: np.ndarray, n: int) -> np.ndarray:
    """ComiRec Eq. 17: share of item pairs in the top-n with different categories.

    Pairs involving an empty slot or an item of unknown category (-1) are left out of the count.
    """
    top = ranked[:, :n]
    cats = np.where(top >= 0, item_category[np.maximum(top, 0)], -1)
    known = cats >= 0
    diff = (cats[:, :, None] != cats[:, None, :]) & known[:, :, None] & known[:, None, :]
    iu = np.triu_indices(top.shape[1], k=1)
    pair_known = (known[:, :, None] & known[:, None, :])[:, iu[0], iu[1]].sum(axis=1)
    n_diff = diff[:, iu[0], iu[1]].sum(axis=1)
    return np.divide(n_diff, pair_known, out=np.full(len(top), np.nan), where=pair_known > 0)


def novel_category_recall_at(
    ranked: np.ndarray,
    targets: np.ndarray,
    histories: list[np.ndarray],
    item_category: np.ndarray,
    n: int,
) -> np.ndarray:
    """Recall over targets whose category never appears in the user's history; NaN if none."""
    out = np.full(len(ranked), np.nan)
    for row, hist in enumerate(histories):
        t = targets[row][targets[row] >= 0]
        t_cat = item_category[t]
        seen = set(item_category[hist].tolist())
        novel = t[(t_cat >= 0) & ~np.isin(t_cat, list(seen))]
        if len(novel) == 0:
            continue
        top = ranked[row, :n]
        out[row] = np.isin(novel, top).sum() / len(novel)
    return out


def unique_ratio(per_interest: np.ndarray) -> np.ndarray:
    """|∪_k topN_k| / (K·N) from (U, K, N) per-interest lists (-1 slots ignored)."""
    u, k, n = per_interest.shape
    flat = per_interest.reshape(u, k * n)
    srt = np.sort(flat, axis=1)
    distinct = (srt[:, 1:] != srt[:, :-1]) & (srt[:, 1:] >= 0)
    count = distinct.sum(axis=1) + (srt[:, 0] >= 0)
    return count / float(k * n)


def mean_pairwise_cosine(queries: np.ndarray) -> np.ndarray:
    """Mean cosine over the K(K-1)/2 pairs of a user's K query vectors; NaN when K = 1."""
    u, k, _ = queries.shape
    if k < 2:
        return np.full(u, np.nan)
    unit = queries / np.maximum(np.linalg.norm(queries, axis=2, keepdims=True), 1e-12)
    sims = np.einsum("ukd,ujd->ukj", unit, unit)
    iu = np.triu_indices(k, k=1)
    return sims[:, iu[0], iu[1]].mean(axis=1)
