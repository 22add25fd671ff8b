"""The evaluation harness: one protocol (DESIGN §3) for every model.

Full-catalogue retrieval through an exact FAISS inner-product index; metrics per user, then averaged.
"""

from __future__ import annotations

import time
import weakref
from dataclasses import dataclass, field

import numpy as np
from tqdm.auto import tqdm

from model.evaluation import metrics as M
from model.faiss_index import ItemIndex
from model.retriever import Recommendations
from model.sequences import EvalSet, SequenceData

CUTOFFS = (20, 50)


@dataclass
class Evaluation:
    metrics: dict[str, float]
    n_users: int
    seconds: float
    per_user: dict[str, np.ndarray] = field(default_factory=dict)


def build_index(model) -> ItemIndex | None:
    if not hasattr(model, "item_matrix"):
        return None  # MostPopular needs none
    return ItemIndex.build(model.item_matrix(), "flat")


_COOCCURRENCE: dict[int, object] = {}


def training_cooccurrence(data: SequenceData):
    """The items' training co-occurrence vectors (metrics.cooccurrence_vectors), built once per
    SequenceData: training validates every epoch and GemiRec's selection evaluates a grid, all on the same
    data. Keyed by identity (the dataclass is unhashable) and dropped when the data is collected."""
    key = id(data)
    if key not in _COOCCURRENCE:
        _COOCCURRENCE[key] = M.cooccurrence_vectors(data.offsets, data.flat, data.users_of(0), data.n_items)
        weakref.finalize(data, _COOCCURRENCE.pop, key, None)
    return _COOCCURRENCE[key]


def filter_history(ranked: np.ndarray, histories: np.ndarray, n: int) -> np.ndarray:
    """The first n items of each ranked row that are not in that user's history (-1 pads)."""
    out = np.full((len(ranked), n), -1, dtype=np.int64)
    for row in range(len(ranked)):
        keep = ranked[row][~np.isin(ranked[row], histories[row][histories[row] > 0])]
        out[row, : min(n, len(keep))] = keep[:n]
    return out


def evaluate(
    model,
    data: SequenceData,
    part: int | EvalSet = 2,
    cutoffs: tuple[int, ...] = CUTOFFS,
    batch_users: int = 1024,
    index: ItemIndex | None = None,
    progress: bool = False,
    per_user: bool = False,
    ild: bool = False,
) -> Evaluation:
    """Evaluate on validation (part=1) or test (part=2) users.

    `ild`: also the merged list's intra-list distance, which needs the items × training-users co-occurrence
    matrix: cheap on the campaign's datasets, but at 10M events (200k items, 200k training users) it doubled
    the evaluation's time and memory, so training's per-epoch validation and the flow leave it out and the
    benchmark harness asks for it."""
    start = time.perf_counter()
    es = part if isinstance(part, EvalSet) else data.eval_set(part)
    index = index if index is not None else build_index(model)
    n_max = max(cutoffs)
    filt = data.cfg.filter_history
    has_cat = bool((data.item_category[1:] >= 0).any())
    sums: dict[str, list[np.ndarray]] = {}
    vectors = training_cooccurrence(data) if ild else None
    recommended: list[np.ndarray] = []  # every user's merged top-n_max, for catalogue coverage

    def add(store, key, values):
        store.setdefault(key, []).append(values)

    steps = range(0, len(es), batch_users)
    for lo in tqdm(steps, desc="evaluate", disable=not progress, leave=False):
        hi = min(lo + batch_users, len(es))
        hist = es.histories[lo:hi]
        targets = es.targets[lo:hi]
        rec: Recommendations = model.recommend(hist, index, n_max + (data.cfg.maxlen if filt else 0))
        ranked = filter_history(rec.ranked, hist, n_max) if filt else rec.ranked[:, :n_max]
        hits = M.hits_matrix(ranked, targets)
        for n in cutoffs:
            add(sums, f"recall@{n}", M.recall_at(hits, targets, n))
            add(sums, f"ndcg@{n}", M.ndcg_at(hits, targets, n))
            add(sums, f"hit@{n}", M.hit_rate_at(hits, n))
            if has_cat:
                add(sums, f"diversity@{n}", M.diversity_at(ranked, data.item_category, n))
                add(
                    sums,
                    f"novel_recall@{n}",
                    M.novel_category_recall_at(
                        ranked, targets, es.full_histories[lo:hi], data.item_category, n
                    ),
                )
        # the merged list a user sees, measured alike for every model; unique_ratio below only looks at
        # the per-interest lists, which GemiRec's family restriction makes disjoint by construction
        if vectors is not None:
            add(sums, f"ild@{n_max}", M.intra_list_distance_at(ranked, vectors, n_max))
        if has_cat:
            add(sums, f"distinct_categories@{n_max}", M.distinct_categories_at(ranked, data.item_category, n_max))
        recommended.append(np.unique(ranked[:, :n_max]))
        if rec.per_interest is not None:
            add(sums, f"unique_ratio@{n_max}", M.unique_ratio(rec.per_interest[:, :, :n_max]))
        if rec.queries is not None and rec.queries.shape[1] > 1:
            add(sums, "interest_cosine", M.mean_pairwise_cosine(rec.queries))
    out = {k: float(np.nanmean(np.concatenate(v))) for k, v in sums.items()}
    # an aggregate over users (not a per-user mean), so it stays out of per_user
    out[f"coverage@{n_max}"] = M.coverage(np.concatenate(recommended) if recommended else np.zeros(0), data.n_items)
    if has_cat:
        novel = np.concatenate(sums[f"novel_recall@{n_max}"])
        out["novel_users"] = float(np.isfinite(novel).sum())
    keep = {k: np.concatenate(v) for k, v in sums.items()} if per_user else {}
    return Evaluation(out, len(es), time.perf_counter() - start, keep)


def evaluate_splits(model, data: SequenceData, **kw) -> dict[str, Evaluation]:
    index = build_index(model)
    return {name: evaluate(model, data, p, index=index, **kw) for name, p in (("val", 1), ("test", 2))}


def bootstrap_ci(per_user: np.ndarray, n_boot: int = 1000, seed: int = 0) -> tuple[float, float]:
    """95 % percentile bootstrap interval of a per-user mean (small test sets need one)."""
    rng = np.random.default_rng(seed)
    x = per_user[np.isfinite(per_user)]
    if len(x) == 0:
        return float("nan"), float("nan")
    means = x[rng.integers(0, len(x), (n_boot, len(x)))].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def paired_ratio_ci(a: np.ndarray, b: np.ndarray, n_boot: int = 2000, seed: int = 0
                    ) -> tuple[float, float, float]:
    """mean(a) / mean(b) over the same users, with a 95 % bootstrap interval that resamples users (one
    draw for both models, so what the two share, which users are easy, cancels out of the interval)."""
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    if len(a) == 0 or b.sum() == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(a), (n_boot, len(a)))
    ratios = a[idx].mean(axis=1) / np.maximum(b[idx].mean(axis=1), 1e-12)
    return float(a.mean() / b.mean()), float(np.percentile(ratios, 2.5)), float(np.percentile(ratios, 97.5))
