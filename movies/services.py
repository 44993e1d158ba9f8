"""Writes that people make on the site: rating and unrating movies; marking the catalogue changed."""

import re
import uuid
from decimal import Decimal, InvalidOperation

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from movies import stats
from movies.models import STAR_CHOICES, CatalogueVersion, Movie, Rating


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


def rate_movie(user: AbstractBaseUser, movie: Movie, stars: object) -> Rating:
    """Saves the user's rating of a movie (one per user and movie, the latest value wins); the same stars
    again are no change, so the row, the movie's counters and the retrain count stay as they are."""
    from recommender.runs import note_data_changed

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
        note_data_changed()
    return rating


def unrate_movie(user: AbstractBaseUser, movie: Movie) -> bool:
    from recommender.runs import note_data_changed

    with transaction.atomic():
        old = Rating.objects.select_for_update().filter(user=user, movie=movie).values_list("stars", flat=True).first()
        deleted, _ = Rating.objects.filter(user=user, movie=movie).delete()
        if deleted:
            stats.apply_rating_change(movie.id, -1, -old)
            note_data_changed()
    return bool(deleted)


def note_catalogue_changed() -> None:
    """Tells every process that movies were added, edited or removed (their title index is rebuilt)."""
    token = uuid.uuid4().hex
    if not CatalogueVersion.objects.filter(id=1).update(token=token):
        CatalogueVersion.objects.update_or_create(id=1, defaults={"token": token})


def create_site_profile(user: AbstractBaseUser) -> None:
    from movies.models import Profile

    Profile.objects.get_or_create(user=user, defaults={"source": Profile.Source.SITE})
