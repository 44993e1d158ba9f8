"""movies/services.py, the catalogue's writes: what a rating changes, what the same stars again do not, and two
submits at once."""

from decimal import Decimal

import pytest

from movies import services
from movies.models import HiddenMovie, Movie, Rating
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


def _co_rate(catalogue_movies: list, groups: list[list[int]]) -> None:
    """Each group is one user's rated movies (indices into catalogue_movies), all 4 stars."""
    from datetime import UTC, datetime

    from django.contrib.auth import get_user_model

    from movies.models import Rating

    for n, group in enumerate(groups):
        user = get_user_model().objects.create_user(f"rater{n}", password="a-long-password-9")
        for i in group:
            Rating.objects.create(
                user=user, movie=catalogue_movies[i], stars=4, rated_at=datetime(2024, 1, 1, tzinfo=UTC)
            )


def test_co_rated_lists_are_recomputed_whole_and_skip_movies_deleted_meanwhile(catalogue_movies) -> None:
    from movies import selectors
    from movies.models import CoRatedMovie

    _co_rate(catalogue_movies, [[0, 1, 2], [0, 1], [6, 7]])
    assert services.refresh_co_rated() == 8  # 0-1, 0-2, 1-2 both ways, and 6-7 both ways
    first = catalogue_movies[0]
    ids, scores = selectors.co_rated_lists([first.id], 5)[first.id]
    assert ids == [catalogue_movies[1].id, catalogue_movies[2].id] and scores[0] > scores[1]
    interactions = selectors.ratings_for_training()  # a snapshot a training run read, then a movie went away
    catalogue_movies[7].delete()
    assert services.refresh_co_rated(interactions) == 6
    assert not CoRatedMovie.objects.filter(movie=catalogue_movies[6]).exists()
    assert services.refresh_co_rated() == 6  # again: the same rows, not twice as many


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_submits_leave_one_rating_holding_one_of_them(bob, catalogue_movies) -> None:
    import threading

    from django.db import connection

    from movies import services

    movie = catalogue_movies[1]
    barrier = threading.Barrier(2)
    errors = []

    def submit(stars: str) -> None:
        try:
            barrier.wait()
            services.rate_movie(bob, movie, stars)
        except Exception as error:  # collected and asserted below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=submit, args=(stars,)) for stars in ("2.5", "4.0")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    ratings = Rating.objects.filter(user=bob, movie=movie)
    assert ratings.count() == 1 and ratings.get().stars in {Decimal("2.5"), Decimal("4.0")}


def test_hiding_is_idempotent_and_undone_by_unhiding(bob, catalogue_movies) -> None:
    movie = catalogue_movies[4]
    assert services.hide_movie(bob, movie) and not services.hide_movie(bob, movie)
    assert HiddenMovie.objects.filter(user=bob).count() == 1
    assert services.unhide_movie(bob, movie) and not services.unhide_movie(bob, movie)
