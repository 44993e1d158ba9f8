"""Each movie's rating count and mean, and the one definition of popularity every page uses.

A movie's `rated_score` is its mean damped towards the global mean as if it had PRIOR_RATINGS more
ratings at that mean (one 5-star rating does not top "highest rated"); its `popularity` is that
score times log(1 + number of ratings): well liked and widely seen. The counters change with each
rating write (`apply_rating_change`, inside the writer's transaction) and are recomputed from the
ratings table by the import (`refresh_movie_stats`)."""

import math
from decimal import Decimal

from django.core.cache import cache
from django.db.models import Case, Count, F, FloatField, OuterRef, Subquery, Sum, Value, When
from django.db.models.functions import Cast, Coalesce, Ln

from movies.models import Movie, Rating

PRIOR_RATINGS = 20
DEFAULT_MEAN = 3.5  # the prior when nothing is rated yet
_MEAN_KEY = "movies:global-mean-stars"
_MEAN_SECONDS = 600  # the prior moves slowly; a stale one shifts every score alike


def global_mean() -> float:
    mean = cache.get(_MEAN_KEY)
    if mean is None:
        totals = Movie.objects.aggregate(stars=Sum("stars_total"), count=Sum("num_ratings"))
        mean = float(totals["stars"]) / totals["count"] if totals["count"] else DEFAULT_MEAN
        cache.set(_MEAN_KEY, mean, _MEAN_SECONDS)
    return mean


def rated_score(stars_total: float, num_ratings: int, mean: float) -> float:
    return (float(stars_total) + PRIOR_RATINGS * mean) / (num_ratings + PRIOR_RATINGS)


def popularity(stars_total: float, num_ratings: int, mean: float) -> float:
    return rated_score(stars_total, num_ratings, mean) * math.log1p(num_ratings)


def _derived_fields(mean: float) -> dict[str, object]:
    """The same formulas as database expressions over the stored counters."""
    count, total = Cast(F("num_ratings"), FloatField()), Cast(F("stars_total"), FloatField())
    damped = (total + Value(PRIOR_RATINGS * mean)) / (count + Value(float(PRIOR_RATINGS)))
    return {
        "rated_score": damped,
        "popularity": damped * Ln(count + Value(1.0)),
        "mean_stars": Case(When(num_ratings=0, then=Value(None)), default=total / count, output_field=FloatField()),
    }


def apply_rating_change(movie_id: int, delta_count: int, delta_stars: Decimal) -> None:
    """Adds one rating write to the movie's counters; call inside the transaction that writes the rating.
    Two statements, since SQLite and MariaDB disagree on whether SET sees the columns it just set."""
    movies = Movie.objects.filter(id=movie_id)
    movies.update(num_ratings=F("num_ratings") + delta_count, stars_total=F("stars_total") + delta_stars)
    movies.update(**_derived_fields(global_mean()))


def refresh_movie_stats(movie_ids: list[int] | None = None) -> None:
    """Recomputes the counters from the ratings table (all movies, or the given ones)."""
    movies = Movie.objects.all() if movie_ids is None else Movie.objects.filter(id__in=movie_ids)
    per_movie = Rating.objects.filter(movie=OuterRef("pk")).order_by().values("movie")
    movies.update(
        num_ratings=Coalesce(Subquery(per_movie.annotate(n=Count("*")).values("n")), 0),
        stars_total=Coalesce(Subquery(per_movie.annotate(s=Sum("stars")).values("s")), Value(0)),
    )
    cache.delete(_MEAN_KEY)
    movies.update(**_derived_fields(global_mean()))
