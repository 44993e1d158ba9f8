"""Reads across movies and ratings that other parts build on."""

from datetime import UTC, datetime
from decimal import Decimal

import numpy as np
import pytest
from django.contrib.auth import get_user_model

from movies import selectors
from movies.models import Movie, Rating

pytestmark = pytest.mark.django_db


def test_ratings_for_training_reads_the_exact_values_as_arrays() -> None:
    users = [get_user_model().objects.create_user(f"u{i}") for i in range(3)]
    movies = [Movie.objects.create(title=f"M{i} (2000)") for i in range(4)]
    expected = []
    for u, m, stars, when in [
        (0, 0, "0.5", datetime(1996, 3, 31, 1, 30, tzinfo=UTC)),
        (0, 1, "4.5", datetime(2019, 10, 27, 2, 59, 59, tzinfo=UTC)),
        (1, 2, "5.0", datetime(2024, 2, 29, 23, 0, tzinfo=UTC)),
        (2, 3, "3.0", datetime(1970, 1, 1, 0, 0, 7, tzinfo=UTC)),
    ]:
        Rating.objects.create(user=users[u], movie=movies[m], stars=Decimal(stars), rated_at=when)
        expected.append((users[u].id, movies[m].id, float(stars), int(when.timestamp())))
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        got = selectors.ratings_for_training(chunk_rows=3)  # more than one chunk
    reads = [q["sql"] for q in queries.captured_queries if "LIMIT" in q["sql"]]
    assert len(reads) == 3  # 3 + 1 rows, then nothing: only a chunk is ever held by the driver
    rows = sorted(zip(got.user_ids.tolist(), got.movie_ids.tolist(), got.stars.tolist(), got.timestamps.tolist()))
    assert rows == sorted(expected)
    assert got.user_ids.dtype == np.int64 and got.stars.dtype == np.float32 and got.timestamps.dtype == np.int64


def test_no_ratings_give_empty_arrays() -> None:
    got = selectors.ratings_for_training()
    assert len(got) == 0 and got.stars.dtype == np.float32
