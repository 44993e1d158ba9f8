"""Reads across movies, users and ratings."""

from collections.abc import Sequence
from typing import overload

import numpy as np
from django.contrib.auth.models import AnonymousUser, User
from django.db import connection
from django.db.models import F, OrderBy, QuerySet

from movies import search
from movies.models import MIN_TAG_STRENGTH, CoRatedMovie, Genre, HiddenMovie, Movie, MovieTag, Rating, Tag
from recommender.ml.data import Catalogue, Interactions

SEARCH_MAX_LENGTH = 100
SORTS = {  # Browse's orders; "relevance" exists only with a query and is the search's own order
    "popular": "Most popular",
    "rated": "Highest rated",
    "newest": "Newest",
    "title": "Title",
}


def popular_movie_ids(limit: int = 200) -> list[int]:
    """The most popular rated movies (movies.stats defines popularity), read from an index."""
    return list(Movie.objects.popular().values_list("id", flat=True)[:limit])


def movies_in_order(movie_ids: list[int]) -> list[Movie]:
    """Movie rows with their genres in two queries, in the order given."""
    rows = Movie.objects.filter(id__in=movie_ids).prefetch_related("genres").in_bulk()
    return [rows[i] for i in movie_ids if i in rows]


def existing_movie_ids(movie_ids: list[int]) -> set[int]:
    """Those of the ids whose movie exists (one primary-key lookup)."""
    return set(Movie.objects.filter(id__in=movie_ids).values_list("id", flat=True)) if movie_ids else set()


def popular_movies(limit: int, exclude_user: User | None = None, exclude: frozenset[int] = frozenset()) -> list[Movie]:
    """The most popular movies, none the user rated and none in `exclude`."""
    ids = popular_movie_ids(limit + (rated_count(exclude_user) if exclude_user else 0) + len(exclude))
    rated = set(Rating.objects.filter(user=exclude_user).values_list("movie_id", flat=True)) if exclude_user else set()
    ids = [i for i in ids if i not in rated and i not in exclude]
    return movies_in_order(ids[:limit])


def co_rated_lists(movie_ids: list[int], limit: int) -> dict[int, tuple[list[int], list[float]]]:
    """Each movie's co-rated movies, nearest first, as (ids, scores): one indexed read for all of them."""
    rows = CoRatedMovie.objects.filter(movie_id__in=movie_ids, position__lt=limit).order_by("movie_id", "position")
    lists: dict[int, tuple[list[int], list[float]]] = {}
    for movie_id, neighbour_id, score in rows.values_list("movie_id", "neighbour_id", "score"):
        ids, scores = lists.setdefault(movie_id, ([], []))
        ids.append(neighbour_id)
        scores.append(score)
    return lists


def co_rated_movies(
    movie: Movie, limit: int, genre: str | None = None, year_from: int | None = None, year_to: int | None = None
) -> list[tuple[Movie, float]]:
    """The movie's co-rated movies that pass the filters, nearest first, with their genres."""
    rows = CoRatedMovie.objects.filter(movie=movie).select_related("neighbour").order_by("position")
    if genre:
        rows = rows.filter(neighbour__genres__name=genre)
    if year_from is not None:
        rows = rows.filter(neighbour__year__gte=year_from)
    if year_to is not None:
        rows = rows.filter(neighbour__year__lte=year_to)
    found = list(rows.prefetch_related("neighbour__genres")[:limit])
    return [(row.neighbour, row.score) for row in found]


def movie_tags(movie: Movie, limit: int = 10) -> list[Tag]:
    """The movie's tags that describe it best: strongest first (movies.MovieTag.strength)."""
    rows = MovieTag.objects.filter(movie=movie, strength__gte=MIN_TAG_STRENGTH).select_related("tag")
    return [row.tag for row in rows.order_by("-strength", "-num_people", "tag__name")[:limit]]


def tag_movies(tag: Tag) -> "QuerySet[MovieTag]":
    """The tag's rows on the movies it describes (`.movie`), strongest first, then the more popular movie."""
    return (
        MovieTag.objects.filter(tag=tag, strength__gte=MIN_TAG_STRENGTH)
        .order_by("-strength", "-movie__popularity", "movie_id")
        .select_related("movie")
        .prefetch_related("movie__genres")
    )


def hidden_movie_ids(user: User | AnonymousUser) -> set[int]:
    """The movies this person said they are not interested in (none for a visitor)."""
    if not user.is_authenticated:
        return set()
    return set(HiddenMovie.objects.filter(user=user).values_list("movie_id", flat=True))


def hidden_movies(user: User) -> QuerySet[HiddenMovie]:
    return HiddenMovie.objects.filter(user=user).select_related("movie").prefetch_related("movie__genres")


def rated_count(user: User | AnonymousUser) -> int:
    return Rating.objects.filter(user=user).count() if user.is_authenticated else 0


class RankedMovies(Sequence[Movie]):
    """Search results as movie ids in order; rows are read only for the slice a page shows."""

    def __init__(self, movie_ids: list[int]) -> None:
        self.movie_ids = movie_ids

    def __len__(self) -> int:
        return len(self.movie_ids)

    @overload
    def __getitem__(self, item: int) -> Movie: ...

    @overload
    def __getitem__(self, item: slice) -> list[Movie]: ...

    def __getitem__(self, item: int | slice) -> Movie | list[Movie]:
        if isinstance(item, slice):
            return movies_in_order(self.movie_ids[item])
        return movies_in_order([self.movie_ids[item]])[0]


def search_movies(
    query: str = "", genre: str = "", year_from: int | None = None, year_to: int | None = None, sort: str = ""
) -> "QuerySet[Movie] | RankedMovies":
    """Movies matching the filters. With a query, best match first (movies.search) unless `sort` names
    another order; without one, in `sort` order (most popular by default)."""
    query = query.strip()[:SEARCH_MAX_LENGTH]
    if query:
        return RankedMovies(search.search_ids(query, genre, year_from, year_to, sort))
    movies = Movie.objects.all()
    if genre:
        movies = movies.filter(genres__name=genre)
    if year_from is not None:
        movies = movies.filter(year__gte=year_from)
    if year_to is not None:
        movies = movies.filter(year__lte=year_to)
    orders: dict[str, list[str | OrderBy]] = {
        "popular": ["-popularity", "id"],
        "rated": ["-rated_score", "id"],
        "newest": [F("year").desc(nulls_last=True), "-id"],
        "title": ["display_title", "id"],
    }
    return movies.order_by(*orders.get(sort, orders["popular"])).prefetch_related("genres")


def suggest_movies(query: str, limit: int = 8) -> list[Movie]:
    query = query.strip()[:SEARCH_MAX_LENGTH]
    return movies_in_order(search.search_ids(query)[:limit]) if query else []


def genre_names() -> list[str]:
    return list(Genre.objects.order_by("name").values_list("name", flat=True))


def user_ratings(user: User | AnonymousUser) -> dict[int, Rating]:
    """movie_id -> the user's rating."""
    if not user.is_authenticated:
        return {}
    return {r.movie_id: r for r in Rating.objects.filter(user=user)}


def rating_history(user: User) -> list[tuple[int, float, int]]:
    """(movie_id, stars, Unix time in microseconds) of every rating by the user, oldest first. Microseconds keep
    the order the site received ratings in; imported ones of the same second tie, and share a recency weight."""
    return [
        (m, float(s), round(t.timestamp() * 1_000_000))
        for m, s, t in Rating.objects.filter(user=user)
        .order_by("rated_at", "movie_id")
        .values_list("movie_id", "stars", "rated_at")
    ]


def ratings_for_training(chunk_rows: int = 200_000) -> Interactions:
    """Every rating as arrays of database ids, for the recommender's graph. Read with one raw query in chunks of
    plain numbers (stars doubled to integers, times as Unix seconds by the database), straight into arrays:
    about 28 bytes a rating however many there are, never a Python object per rating."""
    # Datetimes are stored in UTC; TIMESTAMPDIFF is arithmetic, unlike UNIX_TIMESTAMP, which reads the session's zone.
    integer, epoch = (
        ("SIGNED", "TIMESTAMPDIFF(SECOND, '1970-01-01 00:00:00', rated_at)")
        if connection.vendor == "mysql"
        else ("INTEGER", "CAST(strftime('%%s', rated_at) AS INTEGER)")  # %% : the query has parameters
    )
    # One query per chunk, by primary key: mysqlclient's cursor holds a whole result set in Python objects (about
    # 7 GB at 25M ratings), so one SELECT with fetchmany would not bound the memory. No transaction around it
    # (SQLite's would be IMMEDIATE, a write lock for the whole read): a rating added meanwhile has a larger id.
    sql = (
        f"SELECT id, user_id, movie_id, CAST(ROUND(stars * 2) AS {integer}), {epoch} FROM {Rating._meta.db_table} "
        "WHERE id > %s ORDER BY id LIMIT %s"
    )
    parts, last = [np.zeros((0, 4), dtype=np.int64)], 0
    with connection.cursor() as cursor:
        while True:
            cursor.execute(sql, [last, chunk_rows])
            block = np.array(cursor.fetchall(), dtype=np.int64).reshape(-1, 5)
            if not len(block):
                break
            last = int(block[-1, 0])
            parts.append(block[:, 1:])
    columns = np.concatenate(parts)
    return Interactions(
        columns[:, 0].copy(), columns[:, 1].copy(), (columns[:, 2] / 2).astype(np.float32), columns[:, 3].copy()
    )


def movie_catalogue(movie_ids: list[int] | None = None) -> Catalogue:
    """Movies' ids, titles, years, genres and strongest tags, sorted by id, for the recommender's features."""
    movies = Movie.objects.order_by("id")
    links = Movie.genres.through.objects.all()
    if movie_ids is not None:
        movies, links = movies.filter(id__in=movie_ids), links.filter(movie_id__in=movie_ids)
    genres: dict[int, list[str]] = {}
    for movie_id, name in links.values_list("movie_id", "genre__name"):
        genres.setdefault(movie_id, []).append(name)
    tags: dict[int, list[str]] = {}  # strongest first, as the model reads them
    tag_rows = MovieTag.objects.filter(strength__gte=MIN_TAG_STRENGTH)
    if movie_ids is not None:
        tag_rows = tag_rows.filter(movie_id__in=movie_ids)
    for movie_id, name in tag_rows.order_by("movie_id", "-strength", "tag__name").values_list("movie_id", "tag__name"):
        tags.setdefault(movie_id, []).append(name)
    rows = list(movies.values_list("id", "title", "year"))
    return Catalogue(
        np.array([r[0] for r in rows], dtype=np.int64),
        [r[1] for r in rows],
        [r[2] for r in rows],
        [sorted(genres.get(r[0], [])) for r in rows],
        [tags.get(r[0], []) for r in rows],
    )


def recently_rated_movies(limit: int) -> list[Movie]:
    ids = []
    for movie_id in Rating.objects.order_by("-rated_at").values_list("movie_id", flat=True)[: limit * 20]:
        if movie_id not in ids:
            ids.append(movie_id)
        if len(ids) == limit:
            break
    return movies_in_order(ids)


def onboarding_movies(user: User, limit: int) -> list[Movie]:
    """Well-known titles across genres, the user's rated ones left out: a varied set to rate first."""
    rated = set(Rating.objects.filter(user=user).values_list("movie_id", flat=True))
    candidates = [m for m in movies_in_order(popular_movie_ids(200)) if m.id not in rated]
    chosen, seen_genres = [], set()
    for movie in candidates:  # first pass: one movie per new leading genre, for variety
        genres = [g.name for g in movie.genres.all()]
        if genres and genres[0] not in seen_genres:
            chosen.append(movie)
            seen_genres.add(genres[0])
    chosen += [m for m in candidates if m not in chosen]
    return chosen[:limit]
