"""recommender/ml/corating.py, co-rated movies: the cosine of rater sets, top k per movie, built a block at a time."""

import numpy as np

from recommender.ml.corating import co_rated, rater_matrix


def _dense(raters: object, shrink: float) -> np.ndarray:
    co = (raters.T @ raters).toarray().astype(np.float64)
    norms = np.sqrt(np.diag(co))
    sims = co / (np.outer(norms, norms) + shrink + 1e-9)
    np.fill_diagonal(sims, 0.0)
    return sims


def test_blocks_give_the_dense_top_k_best_first_and_never_the_movie_itself() -> None:
    rng = np.random.default_rng(3)
    users, movies = rng.integers(0, 40, 400), rng.integers(0, 25, 400)
    raters = rater_matrix(users, movies, 40, 25)
    found = co_rated(raters, k=6, shrink=5.0, block_rows=4)
    sims = _dense(raters, 5.0)
    assert np.allclose(found.scores, -np.sort(-sims, axis=1)[:, :6], atol=1e-5)  # the k best, best first
    assert np.allclose(np.take_along_axis(sims, found.indices, axis=1), found.scores, atol=1e-5)  # and theirs
    assert (np.diff(found.scores, axis=1) <= 1e-7).all()
    assert not (found.indices == np.arange(25)[:, None]).any()


def test_movies_without_shared_raters_are_padded_not_invented() -> None:
    # Users 0-1 rate movies 0-2; user 2 rates movie 3 alone; movie 4 has no rater at all.
    raters = rater_matrix(np.array([0, 0, 0, 1, 1, 2]), np.array([0, 1, 2, 0, 1, 3]), 3, 5)
    found = co_rated(raters, k=3, shrink=0.0)
    assert found.indices[0].tolist() == [1, 2, -1]  # 1 shares two raters with 0, 2 one
    assert found.indices[3].tolist() == [-1, -1, -1] and found.indices[4].tolist() == [-1, -1, -1]
    assert found.scores[3].tolist() == [0.0, 0.0, 0.0]
    assert found.as_matrix().nnz == int((found.indices >= 0).sum())


def test_a_repeated_rating_counts_once() -> None:
    once = co_rated(rater_matrix(np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1]), 2, 2), k=1)
    twice = co_rated(rater_matrix(np.array([0, 0, 0, 1, 1]), np.array([0, 1, 1, 0, 1]), 2, 2), k=1)
    assert np.allclose(once.scores, twice.scores)
