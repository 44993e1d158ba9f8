"""Writes that people make on the site: rating and unrating movies; marking the catalogue changed; the
co-rated lists derived from the ratings."""

import re
import uuid
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, cast

import numpy as np
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

if TYPE_CHECKING:
    from recommender.ml.data import Interactions

from movies import events, selectors, stats
from movies.models import STAR_CHOICES, CatalogueVersion, CoRatedMovie, HiddenMovie, Movie, Profile, Rating
from recommender.ml.corating import STORED_PER_MOVIE, co_rated, rater_matrix


class InvalidStars(ValueError):
    """Stars must be 0.5 to 5.0 in half steps."""


_STARS_TEXT = re.compile(r"[0-9](\.[0-9]+)?", re.ASCII)


def parse_stars(value: object) -> Decimal:
    """Decimal stars from form text or JSON numbers; only ASCII digits, 0.5 to 5.0 in half steps."""
    text = str(value).strip() if isinstance(value, (str, int, float, Decimal)) and not isinstance(value, bool) else ""
    if not _STARS_TEXT.fullmatch(text):
        raise InvalidStars(f"{str(value)[:20]!r} is not a number of stars")
    try:
        stars = Decimal(text)
    except (InvalidOperation, ValueError) as error:
        raise InvalidStars(f"{text!r} is not a number of stars") from error
    if stars not in STAR_CHOICES:
        raise InvalidStars("stars must be between 0.5 and 5 in half steps")
    return stars


def rate_movie(user: User, movie: Movie, stars: object) -> Rating:
    """Saves the user's rating of a movie (one per user and movie, the latest value wins); the same stars
    again are no change, so the row, the movie's counters and the retrain count stay as they are."""
    value = parse_stars(stars)
    with transaction.atomic():
        existing = Rating.objects.select_for_update().filter(user=user, movie=movie).first()
        if existing is not None and existing.stars == value:
            # A double click or a client's retry loop must not move rated_at or queue trainings.
            return existing
        rating, created = Rating.objects.update_or_create(
            user=user, movie=movie, defaults={"stars": value, "rated_at": timezone.now()}
        )
        if created:
            stats.apply_rating_change(movie.id, 1, value)
        elif existing is not None:
            stats.apply_rating_change(movie.id, 0, value - existing.stars)
        else:  # created by a concurrent request between our read and write: count from the table
            stats.refresh_movie_stats([movie.id])
        events.send(events.ratings_changed, num_changes=1)
        events.send(events.person_acted, user_id=user.id, movie_id=movie.id, action="rating")
    return rating


def unrate_movie(user: User, movie: Movie) -> bool:
    with transaction.atomic():
        old = Rating.objects.select_for_update().filter(user=user, movie=movie).values_list("stars", flat=True).first()
        deleted, _ = Rating.objects.filter(user=user, movie=movie).delete()
        if deleted:
            stats.apply_rating_change(movie.id, -1, -cast(Decimal, old))  # deleted, so it was read above
            events.send(events.ratings_changed, num_changes=1)
    return bool(deleted)


def hide_movie(user: User, movie: Movie) -> bool:
    """Not interested: the movie leaves every list this person is shown; False when it was hidden already."""
    with transaction.atomic():
        _, created = HiddenMovie.objects.get_or_create(user=user, movie=movie)
        if created:
            events.send(events.person_acted, user_id=user.id, movie_id=movie.id, action="hidden")
    return created


def unhide_movie(user: User, movie: Movie) -> bool:
    """The undo; False when it was not hidden."""
    deleted, _ = HiddenMovie.objects.filter(user=user, movie=movie).delete()
    return bool(deleted)


def movie_saved(movie_id: int) -> None:
    """A movie added or edited (admin): every process's title index and the recommender's vector for it."""
    note_catalogue_changed()
    events.send(events.movie_saved, movie_id=movie_id)


def delete_movies(movie_ids: list[int]) -> None:
    """After movies' rows were deleted (admin): the title index, and their vectors must leave Milvus."""
    note_catalogue_changed()
    events.send(events.movies_deleted, movie_ids=movie_ids)


def note_catalogue_changed() -> None:
    """Tells every process that movies were added, edited or removed (their title index is rebuilt)."""
    token = uuid.uuid4().hex
    if not CatalogueVersion.objects.filter(id=1).update(token=token):
        CatalogueVersion.objects.update_or_create(id=1, defaults={"token": token})


def create_site_profile(user: User) -> None:
    Profile.objects.get_or_create(user=user, defaults={"source": Profile.Source.SITE})


CO_RATED_WRITE_ROWS = 5_000


def refresh_co_rated(interactions: "Interactions | None" = None, per_movie: int | None = None) -> int:
    """Recomputes every movie's co-rated list from the ratings (or the snapshot a training run read) and replaces
    the stored lists in one transaction, so a page sees the old lists or the new, never a mix; returns the rows
    written. Memory stays bounded: the ratings as arrays, the similarity a block of movies at a time."""
    interactions = interactions if interactions is not None else selectors.ratings_for_training()
    movie_ids = np.unique(interactions.movie_ids)
    user_ids = np.unique(interactions.user_ids)
    raters = rater_matrix(
        np.searchsorted(user_ids, interactions.user_ids),
        np.searchsorted(movie_ids, interactions.movie_ids),
        len(user_ids),
        len(movie_ids),
    )
    found = co_rated(raters, per_movie or STORED_PER_MOVIE)
    movies, positions = np.nonzero(found.indices >= 0)  # padding only ever trails, so positions run 0, 1, ...
    pairs = (
        movie_ids[movies].tolist(),
        movie_ids[found.indices[movies, positions]].tolist(),
        positions.tolist(),
        found.scores[movies, positions].tolist(),
    )
    with transaction.atomic():
        existing = set(Movie.objects.values_list("id", flat=True))  # a movie deleted since the read is left out
        CoRatedMovie.objects.all().delete()
        written = 0
        for start in range(0, len(movies), CO_RATED_WRITE_ROWS):
            rows = [
                CoRatedMovie(movie_id=a, neighbour_id=b, position=p, score=s)
                for a, b, p, s in zip(*(part[start : start + CO_RATED_WRITE_ROWS] for part in pairs), strict=True)
                if a in existing and b in existing
            ]
            CoRatedMovie.objects.bulk_create(rows)
            written += len(rows)
    return written
