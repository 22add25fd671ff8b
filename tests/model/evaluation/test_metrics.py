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
