"""Metrics on hand-computed cases, the split, and the baselines."""
import math

import numpy as np
import pytest
from scipy import sparse

from recommender import evaluation
from recommender.scoring import ScoringConfig, fuse, history_weights, top_neighbors

RANKED = np.array([[3, 1, 2], [0, 2, 3], [1, 0, 4]])
HELD_OUT = np.array([1, 4, 1])  # second place, a miss, first place


def test_hit_rate_counts_users_with_their_movie_in_top_k() -> None:
    assert evaluation.hit_rate_at_k(RANKED, HELD_OUT, 3) == pytest.approx(2 / 3)
    assert evaluation.hit_rate_at_k(RANKED, HELD_OUT, 1) == pytest.approx(1 / 3)


def test_ndcg_is_one_over_log2_of_rank_plus_one() -> None:
    assert evaluation.ndcg_at_k(RANKED, HELD_OUT, 3) == pytest.approx((1 / math.log2(3) + 0 + 1) / 3)


def test_mrr_is_mean_reciprocal_rank() -> None:
    assert evaluation.mrr_at_k(RANKED, HELD_OUT, 3) == pytest.approx((1 / 2 + 0 + 1) / 3)


def test_coverage_is_share_of_catalogue_recommended() -> None:
    assert evaluation.coverage_at_k(RANKED, 10, 2) == pytest.approx(len({3, 1, 0, 2}) / 10)


def test_top_k_never_returns_excluded_movies() -> None:
    scores = np.array([[0.9, 0.8, 0.1, 0.5]])
    exclude = sparse.csr_matrix(([1.0], ([0], [0])), shape=(1, 4))
    assert evaluation.top_k(scores, exclude, 2).tolist() == [[1, 3]]


def test_leave_last_out_holds_out_the_last_two_by_time() -> None:
    users = np.array([0, 0, 0, 0, 1, 1])
    movies = np.array([5, 6, 7, 8, 1, 2])
    times = np.array([4, 1, 3, 2, 1, 2])
    split = evaluation.leave_last_out(users, movies, np.ones(6, dtype=np.float32), times, 2, 10)
    assert split.test.tolist() == [5, -1] and split.validation.tolist() == [7, -1]
    assert sorted(zip(split.train[0].tolist(), split.train[1].tolist())) == [(0, 6), (0, 8), (1, 1), (1, 2)]


def test_ease_ranks_the_co_rated_movie_first() -> None:
    # Users 0-9 rate movies 0 and 1 together, users 10-19 rate 2 and 3; users 20-29 have seen only 0 or 2.
    users = [u for u in range(10) for _ in (0, 1)] + [u for u in range(10, 20) for _ in (2, 3)] + list(range(20, 30))
    movies = [0, 1] * 10 + [2, 3] * 10 + [0] * 5 + [2] * 5
    n = len(users)
    validation = np.array([-1] * 20 + [1] * 5 + [3] * 5)
    split = evaluation.Split(30, 6, (np.array(users), np.array(movies), np.ones(n, dtype=np.float32), np.arange(n)),
                             validation, validation.copy(), np.ones(30, dtype=np.float32), np.zeros(30, dtype=np.int64))
    history = split.history_matrix(include_validation=False)
    cold = np.arange(20, 30)
    ranked = evaluation.top_k(evaluation.ease_scorer(split, l2=1.0)(history, cold, False), history[cold], 1)
    assert ranked[:, 0].tolist() == [1] * 5 + [3] * 5
    assert evaluation.evaluate(split, evaluation.ease_scorer(split, l2=1.0), "validation")["hr@10"] == 1.0


def test_history_weights_prefer_recent_well_rated_movies() -> None:
    stars = np.array([5.0, 2.0, 4.0, 5.0], dtype=np.float32)
    times = np.array([1, 2, 3, 4])
    chosen, weights = history_weights(stars, times, ScoringConfig(min_stars=3.5, recency_half_life=1.0, star_power=1.0))
    assert chosen.tolist() == [3, 2, 0]  # newest first, the 2-star rating left out
    assert weights.tolist() == pytest.approx([1.0, 0.8 * 0.5, 1.0 * 0.25])


def test_fuse_sums_weighted_similarities_and_names_the_main_source() -> None:
    fused = fuse(np.array([7, 9]), np.array([1.0, 0.5]), np.array([[1, 2], [2, 3]]), np.array([[0.9, 0.5], [0.8, 0.4]]))
    assert fused[2] == pytest.approx((0.5 + 0.4, 7))
    assert fused[3][1] == 9 and fused[1] == pytest.approx((0.9, 7))


def test_top_neighbors_is_exact_and_excludes_self() -> None:
    vectors = np.eye(4, dtype=np.float32)
    vectors[1] = [0.8, 0.6, 0, 0]
    indices, scores = top_neighbors(vectors, 1)
    assert indices[0, 0] == 1 and indices[1, 0] == 0 and scores[0, 0] == pytest.approx(0.8)
