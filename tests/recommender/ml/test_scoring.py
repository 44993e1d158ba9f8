"""recommender/ml/scoring.py, the serving rule: which ratings count as evidence and with what weight, and how
their neighbours are summed, capped per source, credited and ranked."""

import numpy as np
import pytest

from recommender.ml.data import Histories
from recommender.ml.scoring import Evidence, ScoringConfig, rank, select_history, top_neighbors


def one_user(movies: list[int], stars: list[float], times: list[int]) -> Histories:
    return Histories(np.array([0, len(movies)]), np.array(movies), np.array(stars, dtype=np.float32), np.array(times))


def test_history_prefers_recent_well_rated_movies_and_same_second_ratings_share_a_weight() -> None:
    history = one_user([10, 11, 12, 13, 14], [5.0, 2.0, 4.0, 5.0, 4.0], [1, 2, 3, 4, 4])
    evidence = select_history(history, ScoringConfig(min_stars=3.5, recency_half_life=1.0, star_power=1.0))
    assert evidence.movies.tolist() == [13, 14, 12, 10]  # newest first; 2 stars out
    # 13 and 14 were rated in the same second: neither is "more recent", whatever their ids.
    assert evidence.weights.tolist() == pytest.approx([1.0, 0.8, 0.8 * 0.25, 1.0 * 0.125])


def test_history_falls_back_to_every_rating_when_none_is_good() -> None:
    evidence = select_history(one_user([1, 2], [2.0, 1.0], [5, 6]), ScoringConfig(min_stars=3.5))
    assert evidence.movies.tolist() == [2, 1] and not evidence.liked.any()


def test_rank_sums_weighted_similarities_drops_rated_and_credits_the_main_liked_source() -> None:
    history = one_user([7, 9], [5.0, 4.0], [1, 2])
    evidence = Evidence(
        np.array([0, 0]), np.array([7, 9]), np.array([1.0, 0.5], dtype=np.float32), np.array([True, True])
    )
    ids = np.array([[1, 2, 9], [2, 3, 7]])
    sims = np.array([[0.9, 0.5, 0.3], [0.8, 0.4, 0.3]], dtype=np.float32)
    plain = ScoringConfig(neighbors_per_item=3, max_per_source=0, sharpness=0.0)
    ranked = rank(evidence, ids, sims, history, plain, 5)
    assert ranked.movies[0].tolist() == [2, 1, 3, -1, -1]  # 2: 0.5 + 0.4; rated 7 and 9 never appear
    assert ranked.scores[0, 0] == pytest.approx(0.9) and ranked.sources[0].tolist()[:3] == [7, 7, 9]


def test_a_sharp_kernel_prefers_one_close_neighbour_to_several_loose_ones() -> None:
    history = one_user([7, 9], [5.0, 5.0], [1, 2])
    evidence = Evidence(
        np.array([0, 0]), np.array([7, 9]), np.array([1.0, 1.0], dtype=np.float32), np.array([True, True])
    )
    ids = np.array([[1, 2], [2, 3]])  # 1 is very close to 7; 2 is fairly close to both
    sims = np.array([[0.95, 0.6], [0.6, 0.1]], dtype=np.float32)
    plain = ScoringConfig(neighbors_per_item=2, max_per_source=0, sharpness=0.0)
    assert rank(evidence, ids, sims, history, plain, 3).movies[0].tolist() == [2, 1, 3]  # 1.2 against 0.95
    sharp = rank(evidence, ids, sims, history, ScoringConfig(neighbors_per_item=2, max_per_source=0, sharpness=0.1), 3)
    assert sharp.movies[0].tolist() == [1, 2, 3]  # exp(-0.5) against 2 exp(-4)
    assert sharp.scores[0, 0] == pytest.approx(np.exp(-0.5), rel=1e-5)


def test_a_run_stored_before_the_kernel_is_served_without_it() -> None:
    from dataclasses import asdict

    stored = asdict(ScoringConfig(neighbors_per_item=20, sharpness=0.0))
    del stored["sharpness"]  # the tuned rule as an older run stored it
    assert ScoringConfig.stored(stored).sharpness == 0.0 and ScoringConfig.stored(stored).neighbors_per_item == 20
    assert ScoringConfig.stored({**stored, "sharpness": 0.2}).sharpness == 0.2
    assert ScoringConfig.stored({}) == ScoringConfig()  # nothing stored: today's defaults


def test_a_badly_rated_movie_may_count_but_is_never_credited() -> None:
    history = one_user([7, 9], [5.0, 1.0], [1, 2])
    config = ScoringConfig(neighbors_per_item=2, min_stars=0.0, max_per_source=0, star_power=0.0, recency_half_life=0.0)
    evidence = select_history(history, config)
    assert evidence.movies.tolist() == [9, 7]  # the 1-star rating counts as evidence here
    ids = np.array([[1, 3], [3, 4]])
    sims = np.array([[0.9, 0.1], [0.2, 0.1]], dtype=np.float32)
    ranked = rank(evidence, ids, sims, history, config, 3)
    assert ranked.movies[0].tolist() == [1, 3, 4]
    assert ranked.sources[0].tolist() == [-1, 7, 7]  # movie 1 comes only from the 1-star rating: nobody is credited


def test_no_source_brings_more_than_its_share_and_the_rest_fill_in_by_score() -> None:
    history = one_user([100, 200], [5.0, 5.0], [1, 2])
    evidence = Evidence(
        np.array([0, 0]), np.array([200, 100]), np.array([1.0, 0.1], dtype=np.float32), np.array([True, True])
    )
    ids = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    sims = np.array([[0.9, 0.8, 0.7, 0.6], [0.9, 0.8, 0.7, 0.6]], dtype=np.float32)
    ranked = rank(evidence, ids, sims, history, ScoringConfig(neighbors_per_item=4, max_per_source=2), 4)
    assert ranked.movies[0].tolist() == [1, 2, 5, 6]
    assert np.bincount(ranked.sources[0] // 100).max() == 2


def test_a_shorter_list_is_the_beginning_of_a_longer_one_where_the_cap_binds() -> None:
    """The page shows 20 and the bench scores the top 10: the first 10 of the page must be that top 10. One liked
    movie brings most of the best candidates, so the cap of 3 binds in every list longer than 3."""
    history = one_user([100, 200], [5.0, 5.0], [1, 2])
    evidence = Evidence(
        np.array([0, 0]), np.array([200, 100]), np.array([1.0, 0.1], dtype=np.float32), np.array([True, True])
    )
    ids = np.array([[1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12]])
    sims = np.array([[0.9, 0.8, 0.7, 0.6, 0.5, 0.4]] * 2, dtype=np.float32)
    config = ScoringConfig(neighbors_per_item=6, max_per_source=3, sharpness=0.0)
    longest = rank(evidence, ids, sims, history, config, 12).movies[0].tolist()
    assert longest[:6] == [1, 2, 3, 7, 8, 9]
    for k in range(1, 12):
        assert rank(evidence, ids, sims, history, config, k).movies[0].tolist() == longest[:k], k


def test_a_run_stored_with_the_share_of_a_list_keeps_the_pages_cap() -> None:
    """Runs stored before the cap was a count held a share of 0.5: at the page's 20 that was 10, as now."""
    stored = ScoringConfig.stored({"neighbors_per_item": 50, "max_source_share": 0.5})
    assert stored.max_per_source == 10


def test_ties_go_to_the_smaller_movie() -> None:
    history = one_user([50], [5.0], [1])
    evidence = Evidence(np.array([0]), np.array([50]), np.array([1.0], dtype=np.float32), np.array([True]))
    ranked = rank(
        evidence,
        np.array([[9, 3, 6]]),
        np.array([[0.5, 0.5, 0.5]], dtype=np.float32),
        history,
        ScoringConfig(neighbors_per_item=3, max_per_source=0),
        3,
    )
    assert ranked.movies[0].tolist() == [3, 6, 9]


def test_rank_of_many_users_equals_rank_of_each_alone() -> None:
    generator = np.random.default_rng(0)
    num_users, num_movies = 30, 60
    users = np.repeat(np.arange(num_users), 8)
    movies = np.concatenate([generator.choice(num_movies, 8, replace=False) for _ in range(num_users)])
    stars = generator.choice([1.0, 2.5, 3.5, 4.0, 5.0], len(users)).astype(np.float32)
    times = generator.integers(0, 5, len(users))
    vectors = generator.normal(size=(num_movies, 8)).astype(np.float32)
    indices, scores = top_neighbors(vectors / np.linalg.norm(vectors, axis=1, keepdims=True), 10)
    config = ScoringConfig(neighbors_per_item=10, min_stars=0.0)
    together = Histories.of(users, movies, stars, times, num_users)
    evidence = select_history(together, config)
    all_at_once = rank(evidence, indices[evidence.movies], scores[evidence.movies], together, config, 20)
    for user in range(num_users):
        mine = users == user
        alone = one_user(movies[mine].tolist(), stars[mine].tolist(), times[mine].tolist())
        own = select_history(alone, config)
        single = rank(own, indices[own.movies], scores[own.movies], alone, config, 20)
        assert single.movies[0].tolist() == all_at_once.movies[user].tolist()
        assert single.sources[0].tolist() == all_at_once.sources[user].tolist()


def test_top_neighbors_is_exact_and_excludes_self() -> None:
    vectors = np.eye(4, dtype=np.float32)
    vectors[1] = [0.8, 0.6, 0, 0]
    indices, scores = top_neighbors(vectors, 1)
    assert indices[0, 0] == 1 and indices[1, 0] == 0 and scores[0, 0] == pytest.approx(0.8)


def test_ratings_of_the_same_moment_share_their_recency_weight() -> None:
    from recommender.ml.data import Histories
    from recommender.ml.scoring import ScoringConfig, select_history

    histories = Histories(
        np.array([0, 4]),
        np.array([5, 9, 2, 7]),
        np.full(4, 5.0, dtype=np.float32),
        np.array([10, 20, 20, 30]),
    )
    evidence = select_history(histories, ScoringConfig(recency_half_life=1.0, min_stars=0.0, history_limit=2))
    weights = dict(zip(evidence.movies.tolist(), evidence.weights.tolist()))
    assert weights == pytest.approx({7: 1.0, 9: 0.5, 2: 0.5})  # 9 and 2 tie at the limit: both kept, one weight
