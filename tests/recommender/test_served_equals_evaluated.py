"""What users are served is what evaluation scores: the same vectors and histories give the same top 20.
Cross-cutting: recommender/serving.py (through manage.py recommend) against recommender/ml/evaluation.py."""

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from io import StringIO

import numpy as np
import pytest
from django.core.management import call_command

from tests.conftest import requires_milvus

NUM_MOVIES = 150  # more than the 100 stored neighbours and the 20 read per liked movie
STARS = ["1", "2", "2.5", "3.5", "4", "4.5", "5"]


@requires_milvus
@pytest.mark.django_db
@pytest.mark.parametrize(
    "scoring",
    [
        {"neighbors_per_item": 20, "min_stars": 0.0, "recency_half_life": 2.0, "sharpness": 0.2},
        {
            "neighbors_per_item": 100,
            "min_stars": 3.5,
            "recency_half_life": 20.0,
            "max_per_source": 3,
            "sharpness": 0.0,
        },
    ],
)
def test_the_recommend_command_and_the_evaluator_give_the_same_top_20(
    store, monkeypatch: pytest.MonkeyPatch, scoring: dict
) -> None:
    from django.contrib.auth import get_user_model

    from movies.models import Genre, Movie, Rating
    from recommender import serving
    from recommender.ml import evaluation
    from recommender.ml.scoring import ScoringConfig
    from recommender.models import TrainingRun
    from recommender.vector_store import MovieVectors
    from recommender.vectors import nearest_movies

    generator = np.random.default_rng(7)
    genre = Genre.objects.create(name="Drama")
    movies = Movie.objects.bulk_create(
        [Movie(title=f"Film {i} (2000)", year=2000, movielens_id=i) for i in range(NUM_MOVIES)]
    )
    for movie in movies:
        movie.genres.add(genre)
    movie_ids = np.array(sorted(m.id for m in movies))
    vectors = generator.normal(size=(NUM_MOVIES, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    users, rows = [], []
    start = datetime(2024, 1, 1, tzinfo=UTC)
    for u in range(12):
        user = get_user_model().objects.create_user(f"viewer{u}", password="a-long-password-1")
        users.append(user)
        for k, m in enumerate(generator.choice(NUM_MOVIES, int(generator.integers(8, 30)), replace=False)):
            # Several ratings share a second, as in MovieLens, so ties must break the same way on both paths.
            rows.append(
                Rating(
                    user=user,
                    movie_id=int(movie_ids[m]),
                    stars=Decimal(str(generator.choice(STARS))),
                    rated_at=start + timedelta(seconds=k // 3),
                )
            )
    Rating.objects.bulk_create(rows)

    run = TrainingRun.objects.create(status=TrainingRun.Status.SUCCEEDED, config={"scoring": scoring})
    neighbors, scores = nearest_movies(movie_ids, vectors)
    store.publish(
        run.id,
        MovieVectors(
            movie_ids, vectors, np.full(NUM_MOVIES, 2000, dtype=np.int32), [["Drama"]] * NUM_MOVIES, neighbors, scores
        ),
    )
    monkeypatch.setattr(serving, "_store", store)
    serving.forget_live_run()

    ratings = list(Rating.objects.values_list("user_id", "movie_id", "stars", "rated_at"))
    user_index = {u.id: i for i, u in enumerate(users)}
    split = evaluation.Split(
        len(users),
        NUM_MOVIES,
        (
            np.array([user_index[r[0]] for r in ratings]),
            np.searchsorted(movie_ids, [r[1] for r in ratings]),
            np.array([float(r[2]) for r in ratings], dtype=np.float32),
            np.array([int(r[3].timestamp()) for r in ratings]),
        ),
        np.full(len(users), -1),
        np.full(len(users), -1),
        np.zeros(len(users), dtype=np.float32),
        np.zeros(len(users), dtype=np.int64),
    )
    ranker = evaluation.embedding_ranker(split, vectors, ScoringConfig(**scoring))
    for k in (1, 5, 10, 20, 50, 100):
        out = StringIO()
        call_command("recommend", *[str(u.id) for u in users], "--k", str(k), stdout=out)
        served = {
            line["user_id"]: [r["movie_id"] for r in line["recommendations"]]
            for line in map(json.loads, out.getvalue().splitlines())
        }
        evaluated = ranker(np.arange(len(users)), False, k)
        for user in users:
            expected = [int(movie_ids[i]) for i in evaluated[user_index[user.id]] if i >= 0]
            assert len(expected) == min(k, len(expected)) and served[user.id] == expected, (k, user.id)
            assert k > 20 or len(expected) == k
