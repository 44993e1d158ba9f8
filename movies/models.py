"""Movies, genres, user profiles and ratings: the data everything else learns from."""

from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import models

from movies.titles import natural_title

STAR_CHOICES = [Decimal(half) / 2 for half in range(1, 11)]  # 0.5, 1.0, ... 5.0


class Genre(models.Model):
    name = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class MovieQuerySet(models.QuerySet):
    def popular(self) -> "MovieQuerySet":
        """Rated movies, the most popular first (see movies.stats for the definition)."""
        return self.filter(num_ratings__gt=0).order_by("-popularity", "id")


class Movie(models.Model):
    movielens_id = models.PositiveIntegerField(unique=True, null=True, blank=True)
    title = models.CharField(max_length=500, db_index=True, help_text="As MovieLens writes it: 'Matrix, The (1999)'.")
    display_title = models.CharField(
        max_length=520,
        db_index=True,
        editable=False,
        default="",
        help_text="As people write it: 'The Matrix (1999)'; set from the title on save.",
    )
    year = models.PositiveSmallIntegerField(null=True, blank=True, db_index=True)
    release_date = models.DateField(null=True, blank=True)
    genres = models.ManyToManyField(Genre, related_name="movies", blank=True)
    imdb_id = models.CharField(max_length=16, blank=True)
    tmdb_id = models.PositiveIntegerField(null=True, blank=True)
    # Rating statistics kept with each rating write and by the import (movies.stats), so pages never
    # aggregate the ratings table.
    num_ratings = models.PositiveIntegerField(default=0, editable=False)
    stars_total = models.DecimalField(max_digits=12, decimal_places=1, default=0, editable=False)
    mean_stars = models.FloatField(null=True, blank=True, editable=False)
    rated_score = models.FloatField(
        default=0, db_index=True, editable=False, help_text="Mean stars damped towards the global mean (highest rated)."
    )
    popularity = models.FloatField(
        default=0,
        db_index=True,
        editable=False,
        help_text="Damped mean times log(1 + number of ratings) (most popular).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True, db_index=True)  # indexed: search's staleness check reads its max

    objects = MovieQuerySet.as_manager()

    class Meta:
        ordering = ["display_title", "id"]

    def __str__(self) -> str:
        return self.display_title or natural_title(self.title)

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.display_title = natural_title(self.title)
        update_fields = kwargs.get("update_fields")
        if update_fields is not None and "title" in update_fields:
            kwargs["update_fields"] = {*update_fields, "display_title"}
        super().save(*args, **kwargs)


class CatalogueVersion(models.Model):
    """One row whose token changes whenever movies are added, edited or removed, so every process knows
    when its cached title index is stale (a random token, so a rolled-back change can never be reused)."""

    token = models.CharField(max_length=32)
    changed_at = models.DateTimeField(auto_now=True)


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


class RateCounter(models.Model):
    """Requests counted under one key in one fixed window (web.ratelimits), shared by every web process."""

    key = models.CharField(max_length=128, help_text="What is counted and whose: 'rating:user:42'.")
    window_start = models.DateTimeField()
    expires_at = models.DateTimeField(db_index=True)  # indexed: ended windows are pruned by it
    num_requests = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["key", "window_start"], name="one_counter_per_key_and_window")]

    def __str__(self) -> str:
        return f"{self.key}: {self.num_requests} from {self.window_start:%Y-%m-%d %H:%M:%S}"


class CoRatedMovie(models.Model):
    """One of a movie's nearest movies by who rated both (recommender.ml.corating), recomputed at import and
    before each training: the movie page's similar movies, and personal picks, until a model is live."""

    movie = models.ForeignKey(Movie, on_delete=models.CASCADE, related_name="co_rated")
    neighbour = models.ForeignKey(Movie, on_delete=models.CASCADE, related_name="+")
    position = models.PositiveSmallIntegerField(help_text="0 for the nearest.")
    score = models.FloatField(help_text="Cosine of the two movies' rater sets, shrunk for few raters.")

    class Meta:
        ordering = ["movie", "position"]
        constraints = [models.UniqueConstraint(fields=["movie", "position"], name="one_co_rated_per_position")]

    def __str__(self) -> str:
        return f"{self.neighbour} near {self.movie}"


class Tag(models.Model):
    """A word or phrase people attach to movies ("time travel", "pixar"), from MovieLens's tags and tag genome."""

    name = models.CharField(max_length=255, unique=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class MovieTag(models.Model):
    """How a tag applies to one movie: how many people gave it, and the tag genome's relevance where known."""

    movie = models.ForeignKey(Movie, on_delete=models.CASCADE, related_name="movie_tags")
    tag = models.ForeignKey(Tag, on_delete=models.CASCADE, related_name="movie_tags")
    num_people = models.PositiveIntegerField(default=0, help_text="People who gave the movie this tag (tags.csv).")
    relevance = models.FloatField(null=True, blank=True, help_text="The tag genome's 0-1 relevance, where present.")
    strength = models.FloatField(
        default=0,
        help_text="What orders a tag's movies and a movie's tags: the genome's relevance where known, else "
        "0.5 + 0.1 per person who gave it (at most 1), so both sources compare on one scale.",
    )

    class Meta:
        constraints = [models.UniqueConstraint(fields=["movie", "tag"], name="one_row_per_movie_and_tag")]
        indexes = [models.Index(fields=["tag", "-strength"], name="movietag_tag_strength")]

    def __str__(self) -> str:
        return f"{self.tag} on {self.movie}"


MIN_TAG_STRENGTH = 0.5  # a genome tag below this is not what the movie is about (people's tags always pass)


def tag_strength(num_people: int, relevance: float | None) -> float:
    return relevance if relevance is not None else min(1.0, 0.5 + 0.1 * num_people)


class HiddenMovie(models.Model):
    """A movie a person said they are not interested in: it leaves every list they are shown until they undo it.
    Not a training signal (yet): bench/quality has not shown that it helps."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="hidden_movies")
    movie = models.ForeignKey(Movie, on_delete=models.CASCADE, related_name="+")
    hidden_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-hidden_at"]
        constraints = [models.UniqueConstraint(fields=["user", "movie"], name="one_hide_per_user_and_movie")]

    def __str__(self) -> str:
        return f"{self.user} is not interested in {self.movie}"
