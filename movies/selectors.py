"""Reads across movies, users and ratings."""
from typing import TYPE_CHECKING

from django.db.models import Avg, Count, QuerySet

from movies.models import Movie, Rating

if TYPE_CHECKING:
    from recommender.experiment import Catalogue
    from recommender.graph import Interactions


def popular_movies(limit: int) -> QuerySet[Movie]:
    """Most-rated movies, best average first among equals."""
    return (
        Movie.objects.annotate(num_ratings=Count("ratings"), mean_stars=Avg("ratings__stars"))
        .filter(num_ratings__gt=0)
        .order_by("-num_ratings", "-mean_stars", "id")[:limit]
    )


def ratings_for_training() -> "Interactions":
    """Every rating as arrays of database ids, for the recommender's graph."""
    import numpy as np

    from recommender.graph import Interactions

    rows = list(Rating.objects.values_list("user_id", "movie_id", "stars", "rated_at").iterator(chunk_size=20000))
    if not rows:
        empty = np.zeros(0, dtype=np.int64)
        return Interactions(empty, empty, np.zeros(0, dtype=np.float32), empty)
    users, movies, stars, times = zip(*rows)
    return Interactions(np.array(users, dtype=np.int64), np.array(movies, dtype=np.int64),
                        np.array([float(s) for s in stars], dtype=np.float32),
                        np.array([int(t.timestamp()) for t in times], dtype=np.int64))


def movie_catalogue() -> "Catalogue":
    """Every movie's id, title, year and genres, sorted by id, for the recommender's features."""
    import numpy as np

    from recommender.experiment import Catalogue

    genres: dict[int, list[str]] = {}
    for movie_id, name in Movie.genres.through.objects.values_list("movie_id", "genre__name"):
        genres.setdefault(movie_id, []).append(name)
    rows = list(Movie.objects.order_by("id").values_list("id", "title", "year"))
    return Catalogue(np.array([r[0] for r in rows], dtype=np.int64), [r[1] for r in rows], [r[2] for r in rows],
                     [sorted(genres.get(r[0], [])) for r in rows])
