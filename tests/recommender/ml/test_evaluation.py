"""recommender/ml/evaluation.py: metrics on hand-computed cases, the split, the baselines and the rankers they
score."""

import math

import numpy as np
import pytest
from scipy import sparse

from recommender.ml import evaluation, scoring
from recommender.ml.scoring import ScoringConfig, rank, select_history, top_neighbors

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


def test_beyond_max_users_a_fixed_sample_is_held_out_and_the_rest_train_on_everything() -> None:
    num_users = 50
    users = np.repeat(np.arange(num_users), 4)
    movies = np.tile(np.arange(4), num_users)
    times = np.tile(np.arange(4), num_users)
    stars = np.ones(len(users), dtype=np.float32)
    split = evaluation.leave_last_out(users, movies, stars, times, num_users, 4, max_users=10)
    held = np.flatnonzero(split.test >= 0)
    assert len(held) == 10 and np.array_equal(held, np.flatnonzero(split.validation >= 0))
    assert np.array_equal(split.test[held], np.full(10, 3)) and np.array_equal(split.validation[held], np.full(10, 2))
    per_user = np.bincount(split.train[0], minlength=num_users)
    assert (per_user[held] == 2).all() and (np.delete(per_user, held) == 4).all()
    again = evaluation.leave_last_out(users, movies, stars, times, num_users, 4, max_users=10)
    assert np.array_equal(np.flatnonzero(again.test >= 0), held)  # the same users on every run and seed
    everyone = evaluation.leave_last_out(users, movies, stars, times, num_users, 4, max_users=100)
    assert (everyone.test >= 0).all()


def test_ease_ranks_the_co_rated_movie_first() -> None:
    # Users 0-9 rate movies 0 and 1 together, users 10-19 rate 2 and 3; users 20-29 have seen only 0 or 2.
    users = [u for u in range(10) for _ in (0, 1)] + [u for u in range(10, 20) for _ in (2, 3)] + list(range(20, 30))
    movies = [0, 1] * 10 + [2, 3] * 10 + [0] * 5 + [2] * 5
    n = len(users)
    validation = np.array([-1] * 20 + [1] * 5 + [3] * 5)
    split = evaluation.Split(
        30,
        6,
        (np.array(users), np.array(movies), np.ones(n, dtype=np.float32), np.arange(n)),
        validation,
        validation.copy(),
        np.ones(30, dtype=np.float32),
        np.zeros(30, dtype=np.int64),
    )
    history = split.history_matrix(include_validation=False)
    cold = np.arange(20, 30)
    ranked = evaluation.top_k(evaluation.ease_scorer(split, l2=1.0)(history, cold, False), history[cold], 1)
    assert ranked[:, 0].tolist() == [1] * 5 + [3] * 5
    assert evaluation.evaluate(split, evaluation.ease_scorer(split, l2=1.0), "validation")["hr@10"] == 1.0


def test_paired_bootstrap_sees_a_real_difference_and_not_a_null_one() -> None:
    generator = np.random.default_rng(1)
    theirs = generator.random(2000) < 0.1
    better = theirs | (generator.random(2000) < 0.05)
    clear = evaluation.paired_bootstrap(better, theirs)
    assert clear["low"] > 0 and clear["p_better"] > 0.99
    null = evaluation.paired_bootstrap(theirs, theirs)
    assert null["difference"] == 0 and null["p_better"] == 0


def random_split(num_users: int = 60, num_movies: int = 40, per_user: int = 12, seed: int = 0) -> evaluation.Split:
    rng = np.random.default_rng(seed)
    popularity = 1.0 / np.arange(1, num_movies + 1)
    popularity /= popularity.sum()
    users, movies = [], []
    for u in range(num_users):
        chosen = rng.choice(num_movies, size=per_user, replace=False, p=popularity)
        users += [u] * per_user
        movies += chosen.tolist()
    users, movies = np.array(users), np.array(movies)
    stars = rng.choice([3.0, 4.0, 5.0], size=len(users)).astype(np.float32)
    return evaluation.leave_last_out(users, movies, stars, np.arange(len(users)), num_users, num_movies)


def test_item_knn_built_in_blocks_equals_the_dense_computation() -> None:
    split = random_split()
    x = split.history_matrix(False)
    co = (x.T @ x).toarray().astype(np.float32)
    norms = np.sqrt(np.diag(co))
    dense = co / (np.outer(norms, norms) + 10.0 + 1e-9)
    np.fill_diagonal(dense, 0.0)
    users = np.arange(split.num_users)
    expected = (x[users] @ sparse.csr_matrix(dense)).toarray()  # every neighbour kept: no tie can differ
    got = evaluation.item_knn_scorer(split, num_neighbors=split.num_movies, shrink=10.0, block_rows=7)(x, users, False)
    assert np.allclose(got, expected, atol=1e-5)
    few = evaluation.item_knn_scorer(split, num_neighbors=5, shrink=10.0)
    assert (
        np.count_nonzero(few(sparse.identity(split.num_movies, format="csr"), users[:40], False), axis=1) <= 5
    ).all()


def test_ease_beyond_its_size_learns_the_most_rated_movies_and_ranks_the_rest_last() -> None:
    split = random_split()
    x = split.history_matrix(False)
    counts = np.asarray(x.sum(axis=0)).ravel()
    kept = np.sort(np.argsort(-counts, kind="stable")[:15])
    scores = evaluation.ease_scorer(split, l2=10.0, max_movies=15)(x, np.arange(split.num_users), False)
    assert np.isneginf(np.delete(scores, kept, axis=1)).all() and np.isfinite(scores[:, kept]).all()
    sub = x[:, kept]
    gram = (sub.T @ sub).toarray().astype(np.float64) + 10.0 * np.eye(len(kept))
    p = np.linalg.inv(gram)
    b = p / -np.diag(p)
    np.fill_diagonal(b, 0.0)
    assert np.allclose(scores[:, kept], (sub @ b), atol=1e-3)
    full = evaluation.ease_scorer(split, l2=10.0)(x, np.arange(split.num_users), False)
    assert np.isfinite(full).all()  # within the size limit, every movie


def test_ease_weights_match_the_closed_form_and_each_l2_is_inverted_once_per_split(monkeypatch) -> None:
    inversions = []
    real = evaluation._symmetric_inverse
    # Blocks of 7 rows, so mirroring potri's upper triangle crosses block edges on 40 movies.
    monkeypatch.setattr(evaluation, "_symmetric_inverse", lambda m: inversions.append(1) or real(m, block=7))
    split = random_split()
    x = split.history_matrix(False)
    for l2 in (10.0, 50.0):
        p = np.linalg.inv((x.T @ x).toarray().astype(np.float64) + l2 * np.eye(split.num_movies))
        b = p / -np.diag(p)
        np.fill_diagonal(b, 0.0)
        assert np.allclose(evaluation.ease_weights(split, l2)[1], b, atol=1e-5)
    for l2 in (10.0, 50.0, 20.0):  # the recency grid after plain EASE's: the same l2s again, and a new one
        evaluation.ease_weights(split, l2)
    assert len(inversions) == 3
    evaluation.ease_weights(random_split(seed=1), 10.0)
    assert len(inversions) == 4  # another split: its own weights


def test_item_knn_similarities_are_computed_once_per_split_and_setting(monkeypatch) -> None:
    computed = []
    real = evaluation.co_rated
    monkeypatch.setattr(evaluation, "co_rated", lambda *args: computed.append(args[1:]) or real(*args))
    split = random_split()
    x, users = split.history_matrix(False), np.arange(10)
    first = evaluation.item_knn_scorer(split, 5, 10.0)(x, users, False)
    evaluation.item_knn_scorer(split, 20, 10.0)
    again = evaluation.item_knn_scorer(split, 5, 10.0)(x, users, False)
    evaluation.item_knn_recency_scorer(split, 20, 10.0, recency_half_life=2.0)(x, users, False)
    assert computed == [(5, 10.0, None), (20, 10.0, None)]  # the recency grid reused ItemKNN's similarities
    assert np.array_equal(first, again)
    evaluation.item_knn_scorer(random_split(seed=1), 5, 10.0)
    assert len(computed) == 3  # another split: its own similarities


def test_an_earlier_fold_drops_each_users_last_ratings_by_time() -> None:
    from recommender.ml.data import Interactions

    ratings = [(1, 10, 5), (1, 11, 7), (1, 12, 7), (1, 13, 2), (2, 10, 1), (2, 14, 9), (3, 15, 4)]
    users, movies, times = (np.array(c, dtype=np.int64) for c in zip(*ratings))
    data = Interactions(users, movies, np.full(len(users), 4.0, dtype=np.float32), times)
    earlier = evaluation.drop_last_ratings(data, 1)
    kept = sorted(zip(earlier.user_ids.tolist(), earlier.movie_ids.tolist()))
    assert kept == [(1, 10), (1, 11), (1, 13), (2, 10)]  # user 1 loses 12 (same time as 11, larger id: later)
    assert evaluation.drop_last_ratings(data, 0) is data
    assert len(evaluation.drop_last_ratings(data, 2)) == 2


def test_the_ranker_of_held_out_users_reads_only_their_histories_and_ranks_as_the_whole_ones_would(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    generator = np.random.default_rng(3)
    num_users, num_movies = 80, 50
    users = np.repeat(np.arange(num_users), 10)
    movies = np.concatenate([generator.choice(num_movies, 10, replace=False) for _ in range(num_users)])
    stars = generator.choice([1.0, 3.0, 4.0, 5.0], len(users)).astype(np.float32)
    times = generator.integers(0, 4, len(users))
    split = evaluation.leave_last_out(users, movies, stars, times, num_users, num_movies, 20)
    vectors = generator.normal(size=(num_movies, 8)).astype(np.float32)
    config = ScoringConfig(neighbors_per_item=10, min_stars=0.0)
    indices, scores = top_neighbors(vectors, 10)
    real = evaluation.split_histories

    def expected_for(rows: np.ndarray, with_validation: bool) -> np.ndarray:
        whole = evaluation.subset_histories(real(split, with_validation), rows)
        evidence = select_history(whole, config)
        return rank(evidence, indices[evidence.movies], scores[evidence.movies], whole, config, 20).movies

    built = []
    monkeypatch.setattr(evaluation, "split_histories", lambda *args: built.append(args[1:]) or real(*args))
    held = np.flatnonzero(split.validation >= 0)
    ranker = evaluation.embedding_ranker(split, vectors, config)
    for with_validation in (False, True):
        assert set(real(split, with_validation, True).user_of()) == set(held)  # 60 users outside bring no rows
        assert np.array_equal(ranker(held, with_validation), expected_for(held, with_validation))
    everyone = np.arange(num_users)
    assert np.array_equal(ranker(everyone, False), expected_for(everyone, False))
    assert np.array_equal(ranker(held[:5], False), expected_for(held[:5], False))
    assert built == [(False, True), (True, True), (False, False)]  # each built once, the whole only when asked


def test_ease_on_the_recency_weighted_history_scores_held_out_users_as_on_every_users_history() -> None:
    split = evaluation.leave_last_out(*random_split().train, 60, 40, 15)
    held = np.flatnonzero(split.validation >= 0)
    scorer = evaluation.ease_recency_scorer(split, l2=10.0, recency_half_life=5.0)
    config = ScoringConfig(history_limit=20, recency_half_life=5.0, min_stars=0.0)
    for with_validation in (False, True):
        whole = select_history(evaluation.split_histories(split, with_validation), config)
        weights = scoring.history_weight_matrix(whole, split.num_users, split.num_movies)
        expected = evaluation.ease_scorer(split, 10.0)(weights, held, with_validation)
        assert np.allclose(scorer(None, held, with_validation), expected)
        assert np.isfinite(expected).sum() > 0
    everyone = np.arange(split.num_users)  # with users outside the held-out ones, every history is read
    assert np.allclose(scorer(None, everyone, True), evaluation.ease_scorer(split, 10.0)(weights, everyone, True))


def _same_second_pairs(num_users: int = 400, num_movies: int = 500) -> tuple:
    """Each user rates three pairs of movies, each pair in one second: the only order in the data is the pairs'."""
    generator = np.random.default_rng(3)
    users = np.repeat(np.arange(num_users), 6)
    movies = np.concatenate([generator.choice(num_movies, 6, replace=False) for _ in range(num_users)])
    times = np.tile(np.repeat([100, 200, 300], 2), num_users)
    return users, movies, np.full(len(users), 4.0, dtype=np.float32), times, num_users, num_movies


def test_the_split_holds_no_order_by_movie_within_a_second() -> None:
    """With the larger id always held out as test (the old tie-break), "the larger id of the last burst comes
    next" was right every time; with a seeded random tie order it is right half the time, as chance."""
    users, movies, stars, times, num_users, num_movies = _same_second_pairs()
    rule_right = []
    for seed in (0, 1):
        split = evaluation.leave_last_out(users, movies, stars, times, num_users, num_movies, seed=seed)
        pair = np.stack([split.validation, split.test], axis=1)
        rule_right.append(float(np.mean(split.test == pair.max(axis=1))))
    assert all(0.4 < share < 0.6 for share in rule_right), rule_right
    first = evaluation.leave_last_out(users, movies, stars, times, num_users, num_movies, seed=0)
    second = evaluation.leave_last_out(users, movies, stars, times, num_users, num_movies, seed=1)
    assert not np.array_equal(first.test, second.test)  # the tie order changes with the seed
    again = evaluation.leave_last_out(users, movies, stars, times, num_users, num_movies, seed=0)
    assert np.array_equal(first.test, again.test)  # and is the same for the same seed


def test_training_sequences_keep_the_splits_random_order_within_a_second() -> None:
    from recommender.ml.data import Histories

    users, movies, stars, times, num_users, num_movies = _same_second_pairs()
    split = evaluation.leave_last_out(users, movies, stars, times, num_users, num_movies, seed=0)
    sequences = Histories.of(*split.train, num_users)
    firsts = sequences.movies[sequences.starts[:-1]]  # each user's first pair, both ratings in train
    seconds = sequences.movies[sequences.starts[:-1] + 1]
    assert 0.4 < float(np.mean(seconds > firsts)) < 0.6


def test_the_interval_over_seeds_and_users_holds_the_seed_to_seed_spread() -> None:
    generator = np.random.default_rng(0)
    steady = [generator.normal(0.05, 0.01, 900) for _ in range(5)]
    swinging = [generator.normal(mean, 0.01, 900) for mean in (0.15, -0.05, 0.12, -0.08, 0.11)]
    tight, wide = evaluation.seed_and_user_bootstrap(steady), evaluation.seed_and_user_bootstrap(swinging)
    assert tight["low"] > 0 and tight["high"] - tight["low"] < 0.01
    assert wide["low"] < 0 < wide["high"]  # the same users each time, but runs that disagree: no claim
    pooled = evaluation.paired_bootstrap(np.mean(swinging, axis=0), np.zeros(900))
    assert pooled["low"] > 0  # what averaging seeds per user, then resampling users only, would have claimed


def test_recent_popularity_counts_only_the_days_before_each_users_last_rating() -> None:
    day = evaluation.DAY_S
    # Movie 0 was rated early on, movie 1 in a burst around day 95; user 2's history ends on day 3, user 3's on 97.
    ratings = [  # (user, movie, day)
        (0, 0, 1), (0, 2, 98), (0, 3, 99),
        (1, 0, 2), (1, 1, 95), (1, 2, 200), (1, 3, 201),
        (2, 0, 3), (2, 2, 4), (2, 3, 5),
        (3, 2, 97), (3, 0, 300), (3, 3, 301),
        (4, 1, 96), (4, 2, 202), (4, 3, 203),
    ]  # fmt: skip
    users, movies, days = (np.array(column) for column in zip(*ratings))
    split = evaluation.leave_last_out(users, movies, np.ones(len(users), dtype=np.float32), days * day, 5, 4)
    scorer = evaluation.recent_popularity_scorer(split, days=10)
    scores = scorer(split.history_matrix(False), np.array([2, 3]), False)
    assert scores[0].argmax() == 0  # by day 3 only movie 0 had been rated
    assert scores[1].argmax() == 1  # days 87 to 97: movie 1's burst (days 95, 96), not movie 0's old ratings


def test_list_diversity_is_the_mean_cosine_distance_within_each_list_padding_left_out() -> None:
    from recommender.ml.diversity import intra_list_diversity

    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(30, 8)).astype(np.float32)
    vectors[7] = 0.0  # a movie without a vector counts as unlike everything, as in diversity.mmr
    ranked = rng.integers(0, 30, size=(9, 5))
    ranked[2, 3:] = -1  # a short list
    ranked[4, 1:] = -1  # one movie: no pair, left out of the mean
    expected = [intra_list_diversity(vectors[row[row >= 0]]) for row in ranked if (row >= 0).sum() > 1]
    assert evaluation.list_diversity(ranked, vectors, batch_size=4) == pytest.approx(np.mean(expected), abs=1e-5)
