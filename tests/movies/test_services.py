"""Rating writes through movies.services: what a rating changes, and what the same stars again do not."""

from decimal import Decimal

import pytest

from movies import services
from movies.models import Movie
from recommender.models import RecommenderState

pytestmark = pytest.mark.django_db


def _counters(movie: Movie) -> tuple:
    movie.refresh_from_db()
    return movie.num_ratings, movie.stars_total, movie.mean_stars, movie.rated_score, movie.popularity


def test_rating_the_same_stars_again_writes_and_marks_nothing(bob, catalogue_movies, monkeypatch) -> None:
    movie = catalogue_movies[0]
    first = services.rate_movie(bob, movie, "4")
    counters, num_changes = _counters(movie), RecommenderState.current().num_changes
    monkeypatch.setattr("movies.stats.global_mean", lambda: 1.0)  # a recomputation would move the scores
    again = services.rate_movie(bob, movie, "4.0")
    assert again.stars == Decimal("4.0") and again.rated_at == first.rated_at
    assert type(again).objects.get(id=first.id).rated_at == first.rated_at
    assert _counters(movie) == counters
    assert RecommenderState.current().num_changes == num_changes


def test_rating_other_stars_moves_rated_at_counters_and_changes(bob, catalogue_movies) -> None:
    movie = catalogue_movies[0]
    first = services.rate_movie(bob, movie, "4")
    num_changes = RecommenderState.current().num_changes
    changed = services.rate_movie(bob, movie, "2.5")
    assert changed.rated_at >= first.rated_at and _counters(movie)[:2] == (1, Decimal("2.5"))
    assert RecommenderState.current().num_changes == num_changes + 1
