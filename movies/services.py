"""Writes that people make on the site: rating and unrating movies."""
import re
from decimal import Decimal, InvalidOperation

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from movies.models import STAR_CHOICES, Movie, Rating


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
    """Saves the user's rating of a movie (one per user and movie, the latest value wins)."""
    from recommender.pipeline import note_data_changed

    value = parse_stars(stars)
    with transaction.atomic():
        rating, _ = Rating.objects.update_or_create(user=user, movie=movie,
                                                    defaults={"stars": value, "rated_at": timezone.now()})
        note_data_changed()
    return rating


def unrate_movie(user: AbstractBaseUser, movie: Movie) -> bool:
    from recommender.pipeline import note_data_changed

    with transaction.atomic():
        deleted, _ = Rating.objects.filter(user=user, movie=movie).delete()
        if deleted:
            note_data_changed()
    return bool(deleted)


def create_site_profile(user: AbstractBaseUser) -> None:
    from movies.models import Profile

    Profile.objects.get_or_create(user=user, defaults={"source": Profile.Source.SITE})
