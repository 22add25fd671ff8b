"""Each metric pinned on small hand-computed cases."""

import numpy as np
import pytest

from model.evaluation import metrics as M


def test_recall_hit_ndcg_by_hand():
    ranked = np.array([[5, 3, 9, 1]])
    targets = np.array([[3, 1, 7, -1]])  # 3 targets
    hits = M.hits_matrix(ranked, targets)
    assert hits.tolist() == [[False, True, False, True]]
    assert M.recall_at(hits, targets, 2)[0] == pytest.approx(1 / 3)
    assert M.recall_at(hits, targets, 4)[0] == pytest.approx(2 / 3)
    assert M.hit_rate_at(hits, 1)[0] == 0.0
    assert M.hit_rate_at(hits, 2)[0] == 1.0
    # DCG@4 = 1/log2(3) + 1/log2(5); IDCG over min(4, 3) = 3 ideal positions
    dcg = 1 / np.log2(3) + 1 / np.log2(5)
    idcg = 1 + 1 / np.log2(3) + 1 / np.log2(4)
    assert M.ndcg_at(hits, targets, 4)[0] == pytest.approx(dcg / idcg)
    # @2: one hit at rank 2, ideal = min(2, 3) = 2 positions
    assert M.ndcg_at(hits, targets, 2)[0] == pytest.approx((1 / np.log2(3)) / (1 + 1 / np.log2(3)))


def test_ndcg_perfect_list_is_one_and_empty_slots_do_not_hit():
    ranked = np.array([[4, 2, -1, -1]])
    targets = np.array([[2, 4]])
    hits = M.hits_matrix(ranked, targets)
    assert M.ndcg_at(hits, targets, 4)[0] == pytest.approx(1.0)
    assert not M.hits_matrix(np.array([[-1]]), np.array([[-1]])).any()


def test_diversity_counts_pairs_with_different_categories():
    cat = np.array([-1, 0, 0, 1, 2])  # item 0 is padding
    ranked = np.array([[1, 2, 3, 4]])  # categories 0,0,1,2 -> 6 pairs, 1 same
    assert M.diversity_at(ranked, cat, 4)[0] == pytest.approx(5 / 6)
    assert M.diversity_at(ranked, cat, 2)[0] == pytest.approx(0.0)


def test_novel_category_recall_only_counts_unseen_categories():
    cat = np.array([-1, 0, 0, 1, 2, 2])
    ranked = np.array([[3, 9, 9], [1, 2, 3]])
    targets = np.array([[3, 4, 2], [2, -1, -1]])
    histories = [np.array([1]), np.array([1])]
    out = M.novel_category_recall_at(ranked, targets, histories, cat, 3)
    # user 0: novel targets are 3 (cat 1) and 4 (cat 2); 3 retrieved -> 1/2
    assert out[0] == pytest.approx(0.5)
    # user 1: its only target shares the history's category -> skipped
    assert np.isnan(out[1])


def test_unique_ratio_and_interest_cosine():
    per = np.array([[[1, 2], [2, 3]]])  # K=2, N=2: 3 distinct of 4
    assert M.unique_ratio(per)[0] == pytest.approx(0.75)
    q = np.array([[[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]]])
    expected = (0.0 + np.sqrt(0.5) + np.sqrt(0.5)) / 3
    assert M.mean_pairwise_cosine(q)[0] == pytest.approx(expected)
    assert np.isnan(M.mean_pairwise_cosine(q[:, :1])[0])


def test_paired_ratio_interval_is_narrower_than_the_users_spread():
    from model.evaluation.evaluate import paired_ratio_ci

    rng = np.random.default_rng(0)
    base = rng.uniform(0.0, 1.0, 400)  # users differ a lot in how easy they are …
    better = base * 1.10  # … and one model is 10 % better on every one of them
    ratio, lo, hi = paired_ratio_ci(better, base)
    assert ratio == pytest.approx(1.10)
    assert lo == pytest.approx(1.10) and hi == pytest.approx(1.10)  # pairing cancels the users' spread
    noisy = base + rng.normal(0.0, 0.2, 400)
    ratio, lo, hi = paired_ratio_ci(noisy, base)
    assert lo < ratio < hi and lo < 1.0 < hi  # pure noise: the interval straddles 1
    assert np.isnan(paired_ratio_ci(np.array([np.nan]), np.array([0.5]))[0])


# ---- merged-list diversity (issue #23) -----------------------------------------------------------------------
def test_distinct_categories_ignore_unknown_and_empty_slots():
    cat = np.array([-1, 0, 0, 1, -1, 2])  # item 0 is padding, item 4 has no category
    ranked = np.array([[1, 2, 3, 4, 5], [4, -1, -1, -1, -1], [2, 1, 4, -1, -1]])
    out = M.distinct_categories_at(ranked, cat, 5)
    assert out[0] == 3.0  # categories 0, 0, 1, unknown, 2
    assert np.isnan(out[1])  # nothing with a known category
    assert out[2] == 1.0
    assert M.distinct_categories_at(ranked, cat, 2)[0] == 1.0  # cut at n


def _cooc(sequences: list[list[int]], n_items: int):
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in sequences])])
    flat = np.concatenate([np.asarray(s, dtype=np.int64) for s in sequences])
    return M.cooccurrence_vectors(offsets, flat, np.arange(len(sequences)), n_items)


def test_intra_list_distance_by_hand():
    # users: {1, 2, 3}, {1, 2, 4}, {3, 3}: items 1 and 2 share exactly the same users (distance 0), items
    # 1 and 4 share one of two users (cos 1/√2), items 1 and 3 share one user of 2 and 2 (cos 1/2); the
    # repeated 3 counts once; item 5 has no training user
    vec = _cooc([[1, 2, 3], [1, 2, 4], [3, 3]], n_items=5)
    ild = M.intra_list_distance_at(np.array([[1, 2], [1, 4], [1, 3], [1, 5], [2, -1], [4, 3]]), vec, 2)
    assert ild[0] == pytest.approx(0.0, abs=1e-12)
    assert ild[1] == pytest.approx(1 - 1 / np.sqrt(2))
    assert ild[2] == pytest.approx(0.5)
    assert np.isnan(ild[3]) and np.isnan(ild[4])  # item 5 left out, an empty slot left out: one item left
    assert ild[5] == pytest.approx(1.0)  # disjoint users
    # three items: mean over the 3 pairs (1,2) = 0, (1,3) = 0.5, (2,3) = 0.5
    assert M.intra_list_distance_at(np.array([[1, 2, 3, 5]]), vec, 4)[0] == pytest.approx(1 / 3)


def test_intra_list_distance_matches_the_pairwise_definition():
    rng = np.random.default_rng(0)
    seqs = [rng.integers(1, 30, rng.integers(2, 12)).tolist() for _ in range(40)]
    vec = _cooc(seqs, n_items=31)  # items 30 and 31 have no training users
    ranked = np.stack([rng.permutation(np.arange(1, 32))[:10] for _ in range(20)])
    dense = vec.toarray()
    for row, d in zip(ranked, M.intra_list_distance_at(ranked, vec, 10)):
        kept = [i for i in row if dense[i].any()]
        pairs = [1 - dense[a] @ dense[b] for x, a in enumerate(kept) for b in kept[x + 1:]]
        assert d == pytest.approx(np.mean(pairs))


def test_coverage_counts_distinct_items_over_all_lists():
    lists = np.array([[1, 2, -1], [2, 3, 0]])
    assert M.coverage(lists, n_items=10) == pytest.approx(0.3)
    assert M.coverage(np.zeros(0, dtype=np.int64), n_items=10) == 0.0


def test_evaluate_reports_merged_list_diversity_for_every_model(tiny_data, tiny_cfg):
    from model.config import replace
    from model.evaluation.evaluate import build_index, evaluate, training_cooccurrence
    from model.training.train import make_model

    popular = evaluate(make_model(replace(tiny_cfg, model="mostpop"), tiny_data), tiny_data, 2, per_user=True,
                       ild=True)
    # everyone gets the same 50 items: coverage is exactly 50 of the catalogue
    assert popular.metrics["coverage@50"] == pytest.approx(50 / tiny_data.n_items)
    assert "coverage@50" not in popular.per_user  # an aggregate, not a per-user value
    assert len(popular.per_user["ild@50"]) == len(popular.per_user["recall@50"]) == popular.n_users
    assert np.isfinite(popular.per_user["ild@50"]).all()
    # the synthetic catalogue has 4 categories, and 50 of its 60 items span all of them
    assert popular.metrics["distinct_categories@50"] == 4.0
    model = make_model(replace(tiny_cfg, model="comirec-sa"), tiny_data)  # untrained is enough here
    ev = evaluate(model, tiny_data, 2, index=build_index(model), ild=True)
    assert 0.0 <= ev.metrics["ild@50"] <= 1.0 and "unique_ratio@50" in ev.metrics
    assert "ild@50" not in evaluate(model, tiny_data, 2).metrics  # asked for, not by default
    assert 50 / tiny_data.n_items <= ev.metrics["coverage@50"] <= 1.0
    assert training_cooccurrence(tiny_data) is training_cooccurrence(tiny_data)  # built once per data
