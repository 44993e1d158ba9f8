"""recommender/ml/sasrec.py, SASRec, the sequential baseline: it learns what comes next, from time order alone."""

import numpy as np

from recommender.ml import evaluation
from recommender.ml.sasrec import sasrec_scorer


def test_sasrec_learns_a_sequence_no_co_occurrence_model_could() -> None:
    """Every user walks the same ring of movies (m is always followed by m + 1) from a random start: what comes
    next is given by the last movie alone, and SASRec finds it; Most rated has nothing to go on."""
    generator = np.random.default_rng(0)
    num_users, num_movies, length = 120, 40, 10
    starts = generator.integers(num_movies, size=num_users)
    users = np.repeat(np.arange(num_users), length)
    movies = ((starts[:, None] + np.arange(length)[None, :]) % num_movies).ravel()
    times = np.tile(np.arange(length), num_users)
    split = evaluation.leave_last_out(
        users, movies, np.full(len(users), 4.0, dtype=np.float32), times, num_users, num_movies
    )
    config = {
        "hidden_dim": 16,
        "max_length": 12,
        "max_epochs": 60,
        "patience": 60,
        "learning_rate": 0.01,
        "dropout": 0.0,
    }
    sasrec = evaluation.evaluate(split, sasrec_scorer(split, **config), "test")
    popular = evaluation.evaluate(split, evaluation.most_rated_scorer(split), "test")
    assert sasrec["hr@10"] > 0.9 and popular["hr@10"] < 0.5, (sasrec, popular)
