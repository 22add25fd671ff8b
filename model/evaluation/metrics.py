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


# ---- merged-list diversity (issue #23): the list a user sees, the same yardstick for every model ----------
def distinct_categories_at(ranked: np.ndarray, item_category: np.ndarray, n: int) -> np.ndarray:
    """Number of distinct known categories in the top-n; NaN where no item of the top-n has a known one
    (unknown = -1, like `diversity_at`, so a catalogue without categories gives NaN, not 0)."""
    top = ranked[:, :n]
    cats = np.sort(np.where(top >= 0, item_category[np.maximum(top, 0)], -1), axis=1)
    known = cats >= 0
    # a known category starts a run where it differs from its left neighbour (the first known one always)
    starts = known.copy()
    starts[:, 1:] &= cats[:, 1:] != cats[:, :-1]
    count = starts.sum(axis=1).astype(np.float64)
    count[~known.any(axis=1)] = np.nan
    return count


def cooccurrence_vectors(offsets: np.ndarray, flat: np.ndarray, users: np.ndarray, n_items: int):
    """(n_items + 1, len(users)) scipy CSR: row i = item i's training users (binary), L2-normalised.

    design choice (not from the paper): items are compared by who interacted with them in training, not by
    any model's embeddings, so that the intra-list distance is one yardstick for every model (MostPopular
    included) and every dataset, with categories or without. Items without training users get a zero row.
    """
    from scipy import sparse  # late: only the harness needs it, not serving

    lengths = offsets[users + 1] - offsets[users]
    starts = np.repeat(offsets[users], lengths)
    within = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    items = flat[starts + within]
    cols = np.repeat(np.arange(len(users)), lengths)
    m = sparse.csr_matrix((np.ones(len(items)), (items, cols)), shape=(n_items + 1, len(users)))
    m.sum_duplicates()
    m.data[:] = 1.0  # a user who came back to an item counts once
    norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
    return sparse.diags(np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)) @ m


def intra_list_distance_at(ranked: np.ndarray, vectors, n: int) -> np.ndarray:
    """Mean cosine distance 1 - cos(v_i, v_j) over the pairs of the top-n, with `vectors` the unit rows of
    `cooccurrence_vectors`; items with a zero row (no training users) and empty slots are left out of the
    pairs; NaN where fewer than two items remain.

    Vectorised through the identity Σ_{i<j} cos(v_i, v_j) = (‖Σ_i v_i‖² - m) / 2 for m unit vectors, so a
    batch costs one sparse product instead of U · n² / 2 pair look-ups."""
    from scipy import sparse

    top = ranked[:, :n]
    ids = np.maximum(top, 0)
    has_users = np.diff(vectors.indptr)[ids] > 0
    keep = (top >= 0) & has_users
    rows, cols = np.nonzero(keep)
    pick = sparse.csr_matrix((np.ones(len(rows)), (rows, top[rows, cols])),
                             shape=(len(top), vectors.shape[0]))
    total = pick @ vectors  # (U, training users): Σ_i v_i per user
    sq = np.asarray(total.multiply(total).sum(axis=1)).ravel()
    m = keep.sum(axis=1).astype(np.float64)
    pairs = m * (m - 1) / 2
    mean_cos = np.divide((sq - m) / 2, pairs, out=np.full(len(top), np.nan), where=pairs > 0)
    return np.clip(1.0 - mean_cos, 0.0, 1.0)  # rounding can leave ±1e-16 outside [0, 1]


def coverage(recommended: np.ndarray, n_items: int) -> float:
    """Share of the catalogue's items 1..n_items that appear in at least one list (an aggregate over
    users, not a per-user value); `recommended` holds item ids in any shape, -1 and 0 ignored."""
    ids = np.unique(recommended)
    return float(((ids >= 1) & (ids <= n_items)).sum()) / max(n_items, 1)
