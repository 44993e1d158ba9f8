"""Reads across movies, users and ratings."""
from django.db.models import Avg, Count, QuerySet

from movies.models import Movie


def popular_movies(limit: int) -> QuerySet[Movie]:
    """Most-rated movies, best average first among equals."""
    return (
        Movie.objects.annotate(num_ratings=Count("ratings"), mean_stars=Avg("ratings__stars"))
        .filter(num_ratings__gt=0)
        .order_by("-num_ratings", "-mean_stars", "id")[:limit]
    )
