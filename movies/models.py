"""Movies, genres, user profiles and ratings: the data everything else learns from."""
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Count

STAR_CHOICES = [Decimal(half) / 2 for half in range(1, 11)]  # 0.5, 1.0, ... 5.0


class Genre(models.Model):
    name = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class MovieQuerySet(models.QuerySet):
    def with_rating_counts(self) -> "MovieQuerySet":
        return self.annotate(num_ratings=Count("ratings"))


class Movie(models.Model):
    movielens_id = models.PositiveIntegerField(unique=True, null=True, blank=True)
    title = models.CharField(max_length=500, db_index=True)
    year = models.PositiveSmallIntegerField(null=True, blank=True, db_index=True)
    release_date = models.DateField(null=True, blank=True)
    genres = models.ManyToManyField(Genre, related_name="movies", blank=True)
    imdb_id = models.CharField(max_length=16, blank=True)
    tmdb_id = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = MovieQuerySet.as_manager()

    class Meta:
        ordering = ["title", "id"]

    def __str__(self) -> str:
        return self.title


class Profile(models.Model):
    class Source(models.TextChoices):
        SITE = "site", "Signed up on the site"
        MOVIELENS = "movielens", "Imported from MovieLens"

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile")
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.SITE, db_index=True)
    movielens_user_id = models.PositiveIntegerField(unique=True, null=True, blank=True)
    gender = models.CharField(max_length=1, blank=True)
    age = models.PositiveSmallIntegerField(null=True, blank=True, help_text="Age, or the lower bound of the age group.")
    age_group = models.CharField(max_length=8, blank=True)
    occupation = models.CharField(max_length=64, blank=True)
    zip_code = models.CharField(max_length=16, blank=True)

    def __str__(self) -> str:
        return f"profile of {self.user}"

    @property
    def is_imported(self) -> bool:
        return self.source == self.Source.MOVIELENS


class Rating(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="ratings")
    movie = models.ForeignKey(Movie, on_delete=models.CASCADE, related_name="ratings")
    stars = models.DecimalField(max_digits=2, decimal_places=1, choices=[(s, str(s)) for s in STAR_CHOICES])
    rated_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "movie"], name="one_rating_per_user_and_movie"),
            models.CheckConstraint(condition=models.Q(stars__in=STAR_CHOICES), name="stars_in_half_steps_0_5_to_5"),
        ]
        indexes = [models.Index(fields=["movie", "stars"], name="rating_movie_stars")]

    def __str__(self) -> str:
        return f"{self.user} rated {self.movie} {self.stars}"


class DatasetImport(models.Model):
    """One run of import_movielens: which data set this database holds, and what each run changed."""

    dataset = models.CharField(max_length=32)
    source = models.CharField(max_length=500)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    summary = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"{self.dataset} import at {self.started_at:%Y-%m-%d %H:%M}"
