"""recommender/ml/diversity.py: MMR re-ranking (off at weight 0, spread out at weight 1, scale-free) and the
intra-list diversity it is measured by."""

import time

import numpy as np
import pytest

from recommender.ml.diversity import intra_list_diversity, mmr


def two_clusters() -> tuple[np.ndarray, np.ndarray]:
    """Six candidates: the four best scored point east (tightly), the two worst north."""
    scores = np.array([0.9, 0.85, 0.8, 0.75, 0.3, 0.2])
    vectors = np.array([[1.0, 0.0], [1.0, 0.05], [1.0, -0.05], [1.0, 0.02], [0.0, 1.0], [0.05, 1.0]], dtype=np.float32)
    return scores, vectors


def test_weight_zero_is_the_plain_top_k_with_ties_in_input_order() -> None:
    scores = np.array([0.5, 0.9, 0.5, 0.7, 0.9, 0.1])
    vectors = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
    assert mmr(scores, vectors, 4, 0.0).tolist() == [1, 4, 3, 0]


def test_weight_one_takes_the_second_pick_from_the_other_cluster() -> None:
    scores, vectors = two_clusters()
    order = mmr(scores, vectors, 3, 1.0).tolist()
    assert order[0] == 0  # nothing chosen yet: the most relevant
    assert order[1] in (4, 5)
    assert mmr(scores, vectors, 3, 0.0).tolist() == [0, 1, 2]


def test_a_small_weight_keeps_relevance_ahead_of_spread() -> None:
    scores, vectors = two_clusters()
    assert mmr(scores, vectors, 2, 0.1).tolist() == [0, 1]


def test_picks_never_repeat_and_k_beyond_the_candidates_returns_each_once() -> None:
    scores, vectors = two_clusters()
    for weight in (0.0, 0.3, 1.0):
        order = mmr(scores, vectors, 50, weight)
        assert sorted(order.tolist()) == list(range(6)) and order.dtype == np.int64


def test_no_candidates_or_k_zero_returns_nothing() -> None:
    assert mmr(np.zeros(0), np.zeros((0, 3), dtype=np.float32), 10, 0.5).tolist() == []
    scores, vectors = two_clusters()
    assert mmr(scores, vectors, 0, 0.5).tolist() == []


def test_relevance_normalisation_makes_the_order_independent_of_score_scale() -> None:
    generator = np.random.default_rng(1)
    scores = generator.random(40)
    vectors = generator.normal(size=(40, 8)).astype(np.float32)
    for weight in (0.2, 0.5, 0.9):
        order = mmr(scores, vectors, 10, weight).tolist()
        assert mmr(scores * 1000.0 - 7.0, vectors, 10, weight).tolist() == order
        assert mmr(scores, vectors * 3.0, 10, weight).tolist() == order  # cosine: lengths do not matter


def test_zero_vectors_count_as_unlike_everything_and_equal_scores_keep_input_order() -> None:
    vectors = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 0.0]], dtype=np.float32)
    assert mmr(np.ones(3), vectors, 3, 0.5).tolist() == [0, 2, 1]


def test_a_weight_outside_zero_to_one_is_refused() -> None:
    scores, vectors = two_clusters()
    with pytest.raises(ValueError):
        mmr(scores, vectors, 3, 1.5)


def test_intra_list_diversity_is_the_mean_pairwise_cosine_distance() -> None:
    # Pairs: east-north 1, east-west 2, north-west 1 -> mean 4 / 3; lengths do not matter.
    vectors = np.array([[2.0, 0.0], [0.0, 1.0], [-3.0, 0.0]])
    assert intra_list_diversity(vectors) == pytest.approx(4 / 3)
    assert intra_list_diversity(np.array([[1.0, 1.0], [2.0, 2.0]])) == pytest.approx(0.0)
    assert intra_list_diversity(np.array([[1.0, 0.0], [0.0, 0.0]])) == pytest.approx(1.0)
    assert intra_list_diversity(np.array([[1.0, 0.0]])) == 0.0
    assert intra_list_diversity(np.zeros((0, 4))) == 0.0


def test_weight_one_raises_the_list_diversity() -> None:
    scores, vectors = two_clusters()
    plain = intra_list_diversity(vectors[mmr(scores, vectors, 3, 0.0)])
    spread = intra_list_diversity(vectors[mmr(scores, vectors, 3, 1.0)])
    assert spread > plain + 0.3


def test_one_hundred_candidates_of_64_dimensions_take_well_under_a_millisecond() -> None:
    generator = np.random.default_rng(2)
    scores = generator.random(100)
    vectors = generator.normal(size=(100, 64)).astype(np.float32)
    mmr(scores, vectors, 10, 0.3)
    best = float("inf")
    for _ in range(50):  # the best of many, in CPU time, so a busy machine does not fail it
        started = time.process_time()
        mmr(scores, vectors, 10, 0.3)
        best = min(best, time.process_time() - started)
    assert best < 1e-3
