"""MIRM: interest-conditioned queries and the merge of their FAISS results (DESIGN §2.4).

q_k = F(u, e_{m_k}) = LayerNorm(u + MLP([u ; W e_{m_k}])). Each query (plus, optionally, the plain u)
searches the index; the lists are merged by one of four strategies, chosen on validation users:

- mixture:  Σ_q w_q softmax_q(i), the exact mixture of the per-query softmax distributions
            (w = (1−u_share)·p_k for interests, u_share for u); needs each query's log-partition.
- quota:    query q gets ≈ N·w_q slots, interleaved by rank.
- weighted: score + α·log p_k, best over interests.
- max:      ComiRec's best score over interests.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from model.retriever import merge_max

MERGES = ("mixture", "quota", "weighted", "max")


class InterestQuery(nn.Module):
    def __init__(self, dim: int, interest_dim: int):
        super().__init__()
        self.W = nn.Linear(interest_dim, dim)
        self.mlp = nn.Sequential(nn.Linear(2 * dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        self.norm = nn.LayerNorm(dim)

    def forward(self, u: torch.Tensor, interest_emb: torch.Tensor) -> torch.Tensor:
        """u (..., d), e_m (..., C*d_q) -> q (..., d)."""
        u = u.expand(*interest_emb.shape[:-1], u.shape[-1])
        return self.norm(u + self.mlp(torch.cat([u, self.W(interest_emb)], dim=-1)))


def log_partition(queries: np.ndarray, items: np.ndarray, temperature: float, chunk: int = 256) -> np.ndarray:
    """Exact log Σ_i exp(q·v_i / τ) for every query: (Q, d) × (n, d) -> (Q,)."""
    v = torch.as_tensor(items)
    out = []
    for q in torch.as_tensor(queries).split(chunk):
        out.append(torch.logsumexp(q @ v.T / temperature, dim=1))
    return torch.cat(out).numpy()


def log_partition_estimate(queries: np.ndarray, items: np.ndarray, temperature: float, top_scores: np.ndarray,
                           top_ids: np.ndarray, sample: int, seed: int = 0) -> np.ndarray:
    """log Σ_i exp(q·v_i / τ) from each query's exact top list plus a uniform sample of the rest.

    design choice (not from the paper): the exact partition costs a (Q × n) product, most of a GemiRec
    evaluation at 24k items and out of reach at 1M. With τ = 0.07 the retrieved top items carry most of the
    mass, so they enter exactly; the tail (items scoring below the query's lowest retrieved score) is
    n_tail × the mean of exp over the sampled items that fall below that cutoff."""
    n = len(items)
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(n, size=min(sample, n), replace=False))
    v = torch.as_tensor(items[pick])
    top = torch.as_tensor(top_scores, dtype=torch.float32) / temperature
    valid = torch.as_tensor(top_ids) >= 0
    top = top.masked_fill(~valid, float("-inf"))
    log_top = torch.logsumexp(top, dim=1)
    cutoff = top.masked_fill(~valid, float("inf")).min(dim=1, keepdim=True).values
    s = torch.as_tensor(queries) @ v.T / temperature  # (Q, m)
    below = s < cutoff
    count = below.sum(1)
    n_tail = (n - valid.sum(1)).clamp(min=0)
    log_tail = (torch.logsumexp(s.masked_fill(~below, float("-inf")), dim=1)
                + torch.log(n_tail.float()) - torch.log(count.clamp(min=1).float()))
    log_tail = torch.where((count > 0) & (n_tail > 0), log_tail, torch.full_like(log_tail, float("-inf")))
    return torch.logaddexp(log_top, log_tail).numpy()


class FamilyColumns:
    """The catalogue grouped by level-1 code family: the item matrix with its rows sorted by family (stable,
    so ids stay ascending within a family), where one family's scores are one contiguous slice of a
    product. Serving builds it once per pinned item matrix, so that no request looks for a family's
    columns (a `nonzero` over the 24k items' families, then a gather of those columns) any more."""

    def __init__(self, items: np.ndarray, item_family: np.ndarray):
        family = torch.as_tensor(np.asarray(item_family))
        self.order = torch.argsort(family, stable=True)  # sorted position -> dense id - 1
        self.matrix = torch.as_tensor(items)[self.order].contiguous()
        families, counts = torch.unique_consecutive(family[self.order], return_counts=True)
        ends = counts.cumsum(0).tolist()
        self.bounds = {f: (e - c, e) for f, c, e in zip(families.tolist(), counts.tolist(), ends)}


def exact_search_with_partition(queries: np.ndarray, items: np.ndarray, n: int, temperature: float,
                                chunk: int = 256, row_family: np.ndarray | None = None,
                                columns: FamilyColumns | None = None,
                                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact top-n and log-partition from one (Q, n_items) product: scores (Q, n), dense ids (Q, n) (-1 =
    empty), log Σ_i exp(q·v_i / τ) (Q,). With `row_family` (Q,) and the catalogue's `columns` (built from
    these `items`), a row whose family is ≥ 0 ranks only the items of that family (its partition stays
    over all items).

    The mixture merge needs every query's exact partition, which is the full product an exact search
    computes anyway; serving a flat index takes both from it instead of running FAISS beside it (FAISS's
    flat search was 3-4x slower than this product + top-k at 24k items; benchmarks/serve_bench.py)."""
    masked = row_family is not None and columns is not None
    v = columns.matrix if masked else torch.as_tensor(items)
    k = min(n, len(items))
    top_s, top_i, lse = [], [], []
    for start in range(0, len(queries), chunk):
        s = torch.as_tensor(queries[start:start + chunk]) @ v.T
        lse.append(torch.logsumexp(s / temperature, dim=1))
        if masked:
            val, idx = _top_within_family(s, row_family[start:start + chunk], columns, k)
        else:
            val, idx = s.topk(k, dim=1)
        top_s.append(val)
        top_i.append(torch.where(torch.isfinite(val), idx + 1, -1))
    scores, ids = torch.cat(top_s).numpy(), torch.cat(top_i).numpy()
    if k < n:  # tiny catalogues: pad so callers always get (Q, n), as ItemIndex.search does
        scores = np.pad(scores, ((0, 0), (0, n - k)), constant_values=-np.inf)
        ids = np.pad(ids, ((0, 0), (0, n - k)), constant_values=-1)
    return scores, ids, torch.cat(lse).numpy()


def _top_within_family(s: torch.Tensor, row_family: np.ndarray, columns: FamilyColumns, k: int
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k of each row of s (R, n_items), its columns in `columns`' family order, among the columns of
    the row's family (row_family < 0: all of them): -> scores (R, k), column ids (R, k) in the catalogue's
    own order, -inf past a family's size. A top-k over the family's own slice instead of over a masked
    full row: masking and ranking all 24k columns was most of a served batch."""
    val = torch.full((len(s), k), float("-inf"), dtype=s.dtype)
    idx = torch.zeros((len(s), k), dtype=torch.int64)
    row_family = np.asarray(row_family)
    for fam in np.unique(row_family).tolist():
        rows = torch.from_numpy(np.flatnonzero(row_family == fam))
        first, end = (0, s.shape[1]) if fam < 0 else columns.bounds.get(fam, (0, 0))
        kk = min(k, end - first)
        if kk == 0:  # a family without items: an empty list
            continue
        sv, si = s[:, first:end].index_select(0, rows).topk(kk, dim=1)
        val[rows, :kk] = sv
        idx[rows, :kk] = columns.order[first + si]
    return val, idx


def query_probabilities(queries: np.ndarray, cand: np.ndarray, items: np.ndarray, lse: np.ndarray,
                        temperature: float, allowed: np.ndarray | None = None) -> np.ndarray:
    """softmax_q(i) of every query for every candidate: queries (U, Q, d), candidates (U, P) dense ids
    (-1 = none), item matrix (n, d), log-partitions (U, Q) -> (U, Q, P); 0 where `allowed` says no."""
    vec = items[np.maximum(cand, 1) - 1]  # (U, P, d)
    s = np.einsum("uqd,upd->uqp", queries, vec) / temperature - lse[:, :, None]
    if allowed is not None:
        s = np.where(allowed, s, -np.inf)
    return np.exp(s)


def mixture_weights(probs: np.ndarray, u_share: float) -> np.ndarray:
    """The mixture's query weights: (1 − u_share)·p_k for the K interests, then u_share for u: (U, K+1)."""
    return np.concatenate([(1 - u_share) * probs, np.full((len(probs), 1), u_share)], 1)


def weigh_mixture(probs: np.ndarray, weights: np.ndarray, cand: np.ndarray) -> np.ndarray:
    """Σ_q w_q softmax_q(i): per-query probabilities (U, Q, P), weights (U, Q) -> (U, P), -inf for no item."""
    return np.where(cand >= 0, (weights[:, :, None] * probs).sum(axis=1), -np.inf)


def mixture_scores(queries: np.ndarray, weights: np.ndarray, cand: np.ndarray, items: np.ndarray,
                   lse: np.ndarray, temperature: float, allowed: np.ndarray | None = None) -> np.ndarray:
    """queries (U, Q, d), weights (U, Q), candidates (U, P) dense ids (-1 = none), item matrix (n, d),
    log-partitions (U, Q) -> mixture probability of each candidate (U, P)."""
    return weigh_mixture(query_probabilities(queries, cand, items, lse, temperature, allowed), weights, cand)


def top_distinct(scores: np.ndarray, items: np.ndarray, n: int) -> np.ndarray:
    """Top-n distinct items of one list per user: scores, items (U, P) -> (U, n), -1 = empty slot.

    The same result as merge_max on a single list (an item's best score, ties by item id), from two
    sorts within each row instead of two over the whole batch: 3-4x faster on 2,048 lists of 450 items
    (`python -m benchmarks.studies.selection_speed`: 4.2x with beauty's item ids, 3.0x with ml-100k's)."""
    order = np.lexsort((-scores, items), axis=-1)  # by item, best score first
    s, it = np.take_along_axis(scores, order, 1), np.take_along_axis(items, order, 1)
    first = np.ones_like(it, dtype=bool)
    first[:, 1:] = it[:, 1:] != it[:, :-1]
    first &= it >= 0
    top = np.lexsort((-s, ~first), axis=-1)[:, :n]  # kept entries by score; stable: ties by item id
    out = np.where(np.take_along_axis(first, top, 1), np.take_along_axis(it, top, 1), -1)
    return np.pad(out, ((0, 0), (0, n - out.shape[1])), constant_values=-1) if out.shape[1] < n else out


def quota_keys(weights: np.ndarray, n_per_list: int, n: int) -> np.ndarray:
    """Interleaving keys: entry r of list q sorts at (r + 0.5) / (n·w_q); smaller is earlier."""
    r = np.arange(n_per_list)[None, None, :] + 0.5
    return -(r / np.maximum(weights[:, :, None] * n, 1e-9))


def merge(strategy: str, scores: np.ndarray, cand_items: np.ndarray, weights: np.ndarray, n: int,
          *, queries: np.ndarray | None = None, item_matrix: np.ndarray | None = None,
          lse: np.ndarray | None = None, temperature: float = 1.0, probs: np.ndarray | None = None,
          alpha: float = 1.0, n_interests: int | None = None, allowed: np.ndarray | None = None
          ) -> np.ndarray:
    """Merge per-query lists (U, Q, N') into one ranked list (U, n) of distinct items."""
    K = n_interests if n_interests is not None else scores.shape[1]
    if strategy == "max":
        return merge_max(scores[:, :K], cand_items[:, :K], n)
    if strategy == "weighted":
        bonus = alpha * np.log(np.maximum(probs[:, :K], 1e-12))[:, :, None]
        return merge_max(scores[:, :K] + bonus, cand_items[:, :K], n)
    if strategy == "quota":
        keys = np.broadcast_to(quota_keys(weights, scores.shape[2], n), scores.shape)
        keys = np.where(cand_items >= 0, keys, -np.inf)
        return merge_max(keys, cand_items, n)
    if strategy == "mixture":
        U, Q, N = cand_items.shape
        flat = cand_items.reshape(U, Q * N)
        allow_flat = None
        if allowed is not None:
            allow_flat = allowed(flat)  # (U, Q, P) which query may score which candidate
        p = mixture_scores(queries, weights, flat, item_matrix, lse, temperature, allow_flat)
        return top_distinct(p, flat, n)
    raise ValueError(f"unknown merge {strategy!r}; expected one of {MERGES}")


def restrict_to_family(scores, items, family, interest_family, n):
    """Keep, for interest k, only items whose level-1 code equals the interest's (u is unrestricted)."""
    K = interest_family.shape[1]
    fam = np.where(items >= 0, family[np.maximum(items, 0)], -1)
    ok = np.ones_like(items, dtype=bool)
    ok[:, :K] = fam[:, :K] == interest_family[:, :, None]
    s = np.where(ok, scores, -np.inf)
    order = np.argsort(-s, axis=2, kind="stable")[:, :, :n]
    s = np.take_along_axis(s, order, 2)
    it = np.where(np.isfinite(s), np.take_along_axis(items, order, 2), -1)
    return s, it


def family_search(queries: np.ndarray, item_matrix: np.ndarray, family: np.ndarray,
                  query_family: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-n of each interest query among the items of its own level-1 family.

    queries (B, K, d); item_matrix (n_items, d) for ids 1..n_items; family (n_items + 1,) by id (row 0 =
    padding); query_family (B, K). Returns scores and ids (B, K, n), -1 where a family has fewer than n
    items. Searching the whole catalogue for n × a few items and filtering (restrict_to_family) leaves the
    lists of families far from their query short: on lastfm-s3rec at K = 8 half the slots were empty."""
    B, K, d = queries.shape
    flat_q, flat_f = queries.reshape(B * K, d), query_family.reshape(-1)
    scores = np.full((B * K, n), -np.inf, dtype=np.float32)
    ids = np.full((B * K, n), -1, dtype=np.int64)
    of_item = family[1:]
    for f in np.unique(flat_f):
        rows, members = np.flatnonzero(flat_f == f), np.flatnonzero(of_item == f)
        if not len(members):
            continue
        s = torch.as_tensor(flat_q[rows]) @ torch.as_tensor(item_matrix[members]).T
        val, idx = s.topk(min(n, len(members)), dim=1)
        scores[rows, : val.shape[1]] = val.numpy()
        ids[rows, : val.shape[1]] = members[idx.numpy()] + 1
    return scores.reshape(B, K, n), ids.reshape(B, K, n)


def allowed_in_family(family, interest_family):
    def allowed(cand):  # cand (U, P) -> (U, K+1, P)
        fam = family[np.maximum(cand, 0)]
        ok_k = fam[:, None, :] == interest_family[:, :, None]
        return np.concatenate([ok_k, np.ones_like(ok_k[:, :1])], 1)

    return allowed


def prefer_restricted(scored: list[tuple[float, dict]], tolerance: float) -> tuple[float, dict]:
    """Pick from (validation R@50, option) pairs: the best option with `restrict_family`, unless the best
    option without it is more than `tolerance` (relative) better.

    design choice (not from the paper): the restriction is what keeps the K lists apart (unique ratio,
    novel-category recall); where the best unrestricted setting won on the campaign's validation users it
    won by little (ml-100k seed 2: 31.51 vs 31.14, 1.2 %), inside the spread of validation R@50 between
    neighbouring settings, so a near-tie goes to the restricted, more diverse setting."""
    best_any = max(scored, key=lambda so: so[0])
    restricted = [so for so in scored if so[1].get("restrict_family", True)]
    if not restricted:
        return best_any
    best_r = max(restricted, key=lambda so: so[0])
    return best_any if best_any[0] > (1 + tolerance) * best_r[0] else best_r


# restricted retrieval over an ANN index searches FAMILY_FETCH × n items per interest, then keeps those of
# its own family (an exact index is searched per family: retrieval.family_search)
FAMILY_FETCH = 4


def search_queries(all_q: np.ndarray, codes_np: np.ndarray, index, n: int, restrict: bool, mixture: bool, *,
                   g, temperature: float, family: np.ndarray | None, pinned: tuple, in_fit: bool,
                   item_vectors, exact_lse: np.ndarray | None = None):
    """GemiRec.query_lists' work (see its docstring): `g` is the gemirec config section, `family` each
    item's level-1 code (None unless `restrict`), `pinned` the serving-time (item matrix, family columns),
    `item_vectors` a callable returning the (n, d) item vectors."""
    B, Q, d = all_q.shape
    K = Q - 1
    # restricted lists come from an exact search inside each family when the index is exact; an ANN
    # index over-fetches and filters instead
    per_family = restrict and index.exact
    fetch = n * FAMILY_FETCH if restrict and not per_family else n
    item_matrix = lse = None
    # the mixture's partition is estimated from the searched lists on large catalogues (and in
    # training's per-epoch validation), computed exactly otherwise
    n_cat = index.n_items
    estimate = mixture and (n_cat > g.partition_exact_max
                            or (in_fit and n_cat > 2 * g.partition_sample))
    fused = (pinned[0] is not None and index.exact and mixture
             and len(pinned[0]) <= g.partition_exact_max)
    if fused:  # serving, exact index: one product gives the top lists (per family) and the partitions
        item_matrix = pinned[0]
        row_family = (np.concatenate([codes_np[:, :, 0], np.full((B, 1), -1)], 1).reshape(-1)
                      if per_family else None)
        scores, items, lse = exact_search_with_partition(
            all_q.reshape(B * Q, d), item_matrix, fetch, temperature,
            row_family=row_family, columns=pinned[1] if per_family else None)
        lse = lse.reshape(B, Q)
    elif per_family and not estimate:
        # only u's list comes from the index: family_search below gives the interests' lists, and no
        # partition estimate needs what the index would have returned for them
        scores = np.full((B, Q, fetch), -np.inf, dtype=np.float32)
        items = np.full((B, Q, fetch), -1, dtype=np.int64)
        scores[:, K], items[:, K] = index.search(np.ascontiguousarray(all_q[:, K]), fetch)
    else:
        scores, items = index.search(all_q.reshape(B * Q, d), fetch)
    scores, items = scores.reshape(B, Q, fetch), items.reshape(B, Q, fetch)
    searched = scores, items
    allowed = None
    if restrict:
        if not per_family:
            scores, items = restrict_to_family(scores, items, family, codes_np[:, :, 0], n)
        elif not fused:
            fam_s, fam_i = family_search(all_q[:, :K], item_vectors(), family,
                                         codes_np[:, :, 0], n)
            scores, items = scores.copy(), items.copy()
            scores[:, :K], items[:, :K] = fam_s, fam_i
        allowed = allowed_in_family(family, codes_np[:, :, 0])
    if mixture and not fused:
        item_matrix = item_vectors()
        tau, flat_q = temperature, all_q.reshape(B * Q, d)
        if estimate:
            lse = log_partition_estimate(flat_q, item_matrix, tau, searched[0].reshape(B * Q, fetch),
                                         searched[1].reshape(B * Q, fetch), g.partition_sample)
        else:
            lse = exact_lse if exact_lse is not None else log_partition(flat_q, item_matrix, tau)
        lse = lse.reshape(B, Q)
    return scores, items, allowed, item_matrix, lse
