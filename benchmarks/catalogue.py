"""Catalogue benchmark: exact search against IVF, IVF-PQ and HNSW from 10k to 1M synthetic items.

Run through `python -m benchmarks.serve_bench --skip-service --catalogue 10000,100000,1000000`, which
writes the table; this module only measures.
"""

from __future__ import annotations

import logging
import os
import time

import numpy as np

log = logging.getLogger("serve_bench")


def catalogue_bench(sizes: list[int], dim: int, n_queries: int, k_queries: int, seed: int = 0,
                    hnsw_max_items: int = 200_000) -> list[dict]:
    """Exact vs IVF vs HNSW on clustered unit vectors, like trained item embeddings: search time per
    request (K+1 queries, one thread) and recall@50 against exact, at several search breadths (IVF nprobe,
    HNSW efSearch), so the speed/recall trade-off is visible rather than one point of it."""
    from model.faiss_index import REFINE_FACTOR, ItemIndex, set_threads

    rng = np.random.default_rng(seed)
    rows = []
    for n in sizes:
        centers = rng.standard_normal((max(16, n // 100), dim)).astype(np.float32)
        items = _unit(centers[rng.integers(0, len(centers), n)] + 0.5 * _noise(rng, n, dim))
        queries = _unit(items[rng.integers(0, n, n_queries)] + 0.3 * _noise(rng, n_queries, dim))
        exact_ids, exact_ms = None, None
        for kind in ("flat", "ivf", "ivfpq", "hnsw"):
            if kind == "hnsw" and n > hnsw_max_items:
                log.info("%d items: HNSW skipped (its build takes many minutes on 2 cores)", n)
                continue
            set_threads(os.cpu_count() or 1)  # building may use every core; serving searches on one
            t0 = time.perf_counter()
            index = ItemIndex.build(items, kind)
            build_s = time.perf_counter() - t0
            set_threads(1)
            if kind == "flat":
                breadths = [0]
            elif kind == "ivf":
                breadths = sorted({max(1, index.n_lists // d) for d in (64, 32, 16)})
            elif kind == "ivfpq":  # scanning compressed codes is cheap: probe wider
                breadths = sorted({max(1, index.n_lists // d) for d in (16, 10, 6)})
            else:
                breadths = [64, 128, 256]
            for breadth in breadths:
                index.set_breadth(breadth)
                index.search(queries[:k_queries], 50)
                t0 = time.perf_counter()
                found = [index.search(queries[i:i + k_queries], 50)[1]
                         for i in range(0, n_queries, k_queries)]
                ms = (time.perf_counter() - t0) * 1000 / len(found)
                ids = np.concatenate(found)
                if kind == "flat":
                    exact_ids, exact_ms = ids, ms
                recall = float(np.mean([len(set(a) & set(b)) / 50 for a, b in zip(ids, exact_ids)]))
                setting = {"flat": "exact", "ivf": f"nprobe {breadth}/{index.n_lists}",
                           "ivfpq": f"nprobe {breadth}/{index.n_lists}, re-score {REFINE_FACTOR}×50",
                           "hnsw": f"efSearch {breadth}"}[kind]
                rows.append({"items": n, "index": kind, "setting": setting, "build_s": build_s,
                             "search_ms_per_request": ms, "speedup_vs_exact": exact_ms / ms,
                             "recall@50": recall})
                log.info("%d items, %s %s: build %.1f s, %.3f ms per %d queries, recall@50 %.4f", n, kind,
                         setting, build_s, ms, k_queries, recall)
    return rows


def _noise(rng, n: int, dim: int) -> np.ndarray:
    return rng.standard_normal((n, dim)).astype(np.float32)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)
