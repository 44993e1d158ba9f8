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


def test_training_stops_on_validation_not_on_how_busy_the_machine_is(monkeypatch) -> None:
    """A baseline's figure must not follow the load: with no cap set, an hour passing between epochs does not
    end training; only the patience (or max_epochs) does."""
    from recommender.ml import sasrec

    generator = np.random.default_rng(1)
    users = np.repeat(np.arange(30), 6)
    split = evaluation.leave_last_out(
        users,
        generator.integers(20, size=len(users)),
        np.full(len(users), 4.0, dtype=np.float32),
        np.tile(np.arange(6), 30),
        30,
        20,
    )
    clock = iter(range(0, 10**6, 3600))
    monkeypatch.setattr(sasrec.time, "monotonic", lambda: next(clock))
    epochs = []
    real = evaluation.evaluate
    monkeypatch.setattr(evaluation, "evaluate", lambda *args, **kwargs: epochs.append(1) or real(*args, **kwargs))
    sasrec.train_sasrec(split, sasrec.SASRecConfig(hidden_dim=8, max_length=6, max_epochs=4, patience=10))
    assert len(epochs) == 4
