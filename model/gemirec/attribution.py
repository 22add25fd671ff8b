"""Which query each merged item came from, and the score it was ranked by (what serving shows and logs).

GemiRec merges the lists of K interest queries and the plain user vector u (DESIGN §2.4). For the mixture
merge an item's score is Σ_q w_q softmax_q(i), so the query that contributed most, argmax_q w_q softmax_q(i),
is where the item "came from", and the mixture probability is its score. The other merges have no
per-query probability; there the item goes to the query with the best key of that merge (quota:
w_q·exp(s_q/τ) without the per-query normaliser, which the quota merge never computes, so an
approximation; weighted: s_k + α log p_k; max: s_k), and its score is its inner product with that query
(quota interleaves lists, so these scores need not decrease down the list).

    via, score = attribute(rec, item_matrix, rec_dense_ranked, cfg)   # (U, N) k or -1 for u, (U, N)
"""

from __future__ import annotations

import numpy as np

from model.config import Config
from model.retriever import Recommendations

U_QUERY = -1  # the attribution of an item retrieved by the plain user vector


def attribute(rec: Recommendations, item_matrix: np.ndarray, ranked: np.ndarray, cfg: Config,
              item_codes: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """rec: a model's recommendations; item_matrix (n, d) scoring vectors of dense items 1..n; ranked
    (U, N) dense ids (-1 = empty slot); item_codes (n + 1, C) GemiRec's item -> code table (needed when
    interests are restricted to their code family) -> interest index k (U, N) (-1: u or no interest) and
    score (U, N) (NaN in empty slots)."""
    U, N = ranked.shape
    via = np.full((U, N), U_QUERY, dtype=np.int64)
    score = np.full((U, N), np.nan)
    queries = rec.merge_queries if rec.merge_queries is not None else rec.queries
    if queries is None or N == 0:
        return via, score
    vec = item_matrix[np.maximum(ranked, 1) - 1]  # (U, N, d)
    s = np.einsum("uqd,und->uqn", queries, vec)  # (U, Q, N) inner products
    K = 0 if rec.interest_codes is None else rec.interest_codes.shape[1]
    if rec.merge_weights is None:  # single- or multi-vector baselines: best query, no interests
        key = s
    else:
        key = _merge_keys(rec, s, K, cfg)
        if cfg.gemirec.restrict_family and item_codes is not None and K:
            # interest k only ever scored items of its own level-1 family (restrict_to_family); u all
            family = item_codes[np.maximum(ranked, 0), 0]  # (U, N)
            allowed = family[:, None, :] == rec.interest_codes[:, :, 0][:, :, None]  # (U, K, N)
            key[:, :K] = np.where(allowed, key[:, :K], -np.inf)
    best = key.argmax(1)  # (U, N)
    if rec.merge_weights is not None and cfg.gemirec.merge == "mixture" and rec.merge_lse is not None:
        value = np.exp(key).sum(1)  # the mixture probability the merge ranked by
    else:  # the item's score under the query it came from
        value = np.take_along_axis(s, best[:, None, :], 1)[:, 0]
    if rec.merge_weights is not None:
        via = np.where(best < K, best, U_QUERY)
    filled = ranked >= 0
    return np.where(filled, via, U_QUERY), np.where(filled, value, np.nan)


def _merge_keys(rec: Recommendations, s: np.ndarray, K: int, cfg: Config) -> np.ndarray:
    """(U, Q, N) per-query key of each item under the model's merge; larger wins."""
    g, tau = cfg.gemirec, cfg.train.temperature
    log_w = np.log(np.maximum(rec.merge_weights, 1e-12))[:, :, None]  # (U, Q, 1)
    if g.merge == "mixture" and rec.merge_lse is not None:
        return log_w + s / tau - rec.merge_lse[:, :, None]
    if g.merge == "quota":
        return log_w + s / tau
    keys = np.full_like(s, -np.inf)  # weighted and max merge the K interests only, never u
    keys[:, :K] = s[:, :K]
    if g.merge == "weighted":
        keys[:, :K] += g.weighted_alpha * np.log(np.maximum(rec.interest_probs, 1e-12))[:, :, None]
    return keys
