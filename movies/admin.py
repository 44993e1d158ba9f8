"""Admin for movies, genres, profiles and ratings, built to stay fast on millions of ratings."""

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import User as AuthUser  # for annotations: what get_user_model() gives
from django.db.models import QuerySet
from django.forms import ModelForm
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from movies import services, stats
from movies.models import DatasetImport, Genre, Movie, Profile, Rating


def _ratings_link(label: str, **filters: object) -> str:
    query = "&".join(f"{key}={value}" for key, value in filters.items())
    return format_html('<a href="{}?{}">{}</a>', reverse("admin:movies_rating_changelist"), query, label)


@admin.register(Genre)
class GenreAdmin(admin.ModelAdmin):
    list_display = ("name",)
    search_fields = ("name",)


@admin.register(Movie)
class MovieAdmin(admin.ModelAdmin):
    list_display = ("display_title", "year", "movielens_id", "genre_list", "ratings", "mean_stars")
    list_filter = ("genres", ("year", admin.EmptyFieldListFilter))
    search_fields = ("display_title", "title", "=movielens_id", "=imdb_id")
    filter_horizontal = ("genres",)
    show_full_result_count = False
    list_per_page = 50
    readonly_fields = ("display_title", "created_at", "updated_at", "ratings", "mean_stars", "popularity")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Movie]:
        return super().get_queryset(request).prefetch_related("genres")

    def save_related(self, request: HttpRequest, form: "ModelForm[Movie]", formsets: object, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        services.movie_saved(form.instance.id)

    def delete_model(self, request: HttpRequest, obj: Movie) -> None:
        self.delete_queryset(request, Movie.objects.filter(pk=obj.pk))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Movie]) -> None:
        movie_ids = list(queryset.values_list("id", flat=True))
        super().delete_queryset(request, queryset)
        services.delete_movies(movie_ids)

    @admin.display(description="Genres")
    def genre_list(self, movie: Movie) -> str:
        return ", ".join(genre.name for genre in movie.genres.all())

    @admin.display(description="Ratings", ordering="num_ratings")
    def ratings(self, movie: Movie) -> str:
        return _ratings_link(f"{movie.num_ratings:,} ratings", movie__id__exact=movie.pk)


@admin.register(Rating)
class RatingAdmin(admin.ModelAdmin):
    list_display = ("user", "movie", "stars", "rated_at")
    list_filter = ("stars",)
    list_select_related = ("user", "movie")
    raw_id_fields = ("user", "movie")
    search_fields = ("=user__username", "movie__display_title", "movie__title")
    show_full_result_count = False

    # Rating writes here bypass movies.services, so the movies' counters are recomputed from the table.
    def save_model(self, request: HttpRequest, obj: Rating, form: object, change: bool) -> None:
        old_movie = Rating.objects.filter(pk=obj.pk).values_list("movie_id", flat=True).first() if change else None
        super().save_model(request, obj, form, change)
        stats.refresh_movie_stats([m for m in {obj.movie_id, old_movie} if m is not None])

    def delete_model(self, request: HttpRequest, obj: Rating) -> None:
        super().delete_model(request, obj)
        stats.refresh_movie_stats([obj.movie_id])

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Rating]) -> None:
        movie_ids = list(queryset.values_list("movie_id", flat=True).distinct())
        super().delete_queryset(request, queryset)
        stats.refresh_movie_stats(movie_ids)

    list_per_page = 100
    date_hierarchy = None


class ProfileInline(admin.StackedInline):
    model = Profile
    can_delete = False
    readonly_fields = ("source", "movielens_user_id")


User = get_user_model()
admin.site.unregister(User)


@admin.register(User)
class UserWithProfileAdmin(UserAdmin):
    inlines = (ProfileInline,)
    list_display = ("username", "source", "movielens_user_id", "is_staff", "date_joined", "ratings")
    list_filter = ("profile__source", "is_staff", "is_active")
    list_select_related = ("profile",)
    show_full_result_count = False

    @admin.display(description="Source", ordering="profile__source")
    def source(self, user: AuthUser) -> str:
        return user.profile.get_source_display() if hasattr(user, "profile") else "site"

    @admin.display(description="MovieLens id", ordering="profile__movielens_user_id")
    def movielens_user_id(self, user: AuthUser) -> int | None:
        return user.profile.movielens_user_id if hasattr(user, "profile") else None

    @admin.display(description="Ratings")
    def ratings(self, user: AuthUser) -> str:
        return _ratings_link(f"{user.ratings.count():,} ratings", user__id__exact=user.pk)

    def delete_model(self, request: HttpRequest, obj: AuthUser) -> None:
        self.delete_queryset(request, User.objects.filter(pk=obj.pk))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[AuthUser]) -> None:
        movie_ids = list(Rating.objects.filter(user__in=queryset).values_list("movie_id", flat=True).distinct())
        super().delete_queryset(request, queryset)
        stats.refresh_movie_stats(movie_ids)


@admin.register(DatasetImport)
class DatasetImportAdmin(admin.ModelAdmin):
    list_display = ("dataset", "source", "started_at", "finished_at")
    readonly_fields = ("dataset", "source", "started_at", "finished_at", "summary")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
