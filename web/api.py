"""JSON API with session authentication: recommendations, similar movies, ratings, hiding movies, movie search."""

import json
from collections.abc import Callable
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.core.paginator import Paginator
from django.http import HttpRequest, JsonResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.http import require_GET, require_http_methods

from movies import selectors, services
from movies.models import Movie
from recommender import impressions, serving
from recommender.serving import Recommendations
from web import ratelimits
from web.clientip import client_ip
from web.forms import SearchForm
from web.requests import AuthenticatedHttpRequest


def _movie_json(movie: Movie) -> dict[str, Any]:
    return {
        "movie_id": movie.id,
        "movielens_id": movie.movielens_id,
        "title": movie.display_title,
        "movielens_title": movie.title,
        "year": movie.year,
        "genres": [g.name for g in movie.genres.all()],
        "num_ratings": movie.num_ratings,
        "mean_stars": movie.mean_stars,
    }


def _recommendations_json(result: Recommendations) -> dict[str, Any]:
    return {
        "source": result.source,
        "note": result.note,
        "impression_id": result.impression_id,  # send it back as ?from= when a person opens one of these
        "results": [
            {
                **_movie_json(item.movie),
                "score": round(item.score, 6),
                "because": item.because,
                "because_movie_id": item.because_movie.id if item.because_movie else None,
                "shared_genres": item.shared_genres,
            }
            for item in result.items
        ],
    }


def _bounded_int(value: str | None, default: int, low: int, high: int) -> int | None:
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        return None
    return number if low <= number <= high else None


def _error(message: str, status: int = 400) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def _login_required_json(view: Callable[..., JsonResponse]) -> Callable[..., JsonResponse]:
    def wrapped(request: HttpRequest, *args: object, **kwargs: object) -> JsonResponse:
        if not request.user.is_authenticated:
            return _error("log in first", 401)
        return view(request, *args, **kwargs)

    return wrapped


@require_GET
@_login_required_json
def recommendations(request: AuthenticatedHttpRequest) -> JsonResponse:
    k = _bounded_int(request.GET.get("k"), 10, 1, 100)
    if k is None:
        return _error("k must be a whole number from 1 to 100")
    exclude = _movie_ids(request.GET.get("exclude", ""))
    if exclude is None:
        return _error(f"exclude must be up to {MAX_EXCLUDE} movie ids separated by commas")
    result = serving.recommend_movies_for(request.user, k, exclude)
    return JsonResponse(_recommendations_json(impressions.shown(request.user, result, "api")))


MAX_EXCLUDE = 500


def _movie_ids(text: str) -> frozenset[int] | None:
    """exclude=12,40,7: the ids to leave out of this answer (None when it is not that)."""
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if len(parts) > MAX_EXCLUDE or not all(part.isascii() and part.isdigit() and len(part) <= 10 for part in parts):
        return None
    return frozenset(int(part) for part in parts)


@require_http_methods(["POST", "DELETE"])
@_login_required_json
def hidden(request: AuthenticatedHttpRequest, movie_id: int) -> JsonResponse:
    """POST: not interested in this movie (it leaves every list you are shown); DELETE: the undo."""
    movie = get_object_or_404(Movie, id=movie_id)
    if request.method == "DELETE":
        return JsonResponse(
            {"movie_id": movie.id, "hidden": False, "changed": services.unhide_movie(request.user, movie)}
        )
    return JsonResponse({"movie_id": movie.id, "hidden": True, "changed": services.hide_movie(request.user, movie)})


@require_GET
def similar(request: HttpRequest, movie_id: int) -> JsonResponse:
    movie = get_object_or_404(Movie, id=movie_id)
    k = _bounded_int(request.GET.get("k"), 10, 1, 100)
    form = SearchForm(request.GET)
    exclude = _movie_ids(request.GET.get("exclude", ""))
    if k is None or exclude is None or not form.is_valid():
        return _error("k must be 1-100; year_from/year_to whole years; genre a genre name; exclude movie ids")
    genre = form.cleaned_data["genre"] or None
    if genre and genre not in selectors.genre_names():
        return _error(f"unknown genre {genre[:64]!r}")
    years = form.cleaned_data["year_from"], form.cleaned_data["year_to"]
    result = serving.similar_movies(movie, k, genre, *years, exclude=exclude, user=request.user)
    return JsonResponse(_recommendations_json(impressions.shown(request.user, result, "api", "similar", movie.id)))


@require_GET
def movies(request: HttpRequest) -> JsonResponse:
    form = SearchForm(request.GET)
    if not form.is_valid():
        return _error(
            "q is at most 100 characters; years are whole numbers from 1870 to 2100; "
            "sort is relevance, popular, rated, newest or title"
        )
    page_number = _bounded_int(request.GET.get("page"), 1, 1, 10**6)
    if page_number is None:
        return _error("page must be a positive whole number")
    data = form.cleaned_data
    paginator = Paginator(
        selectors.search_movies(data["q"], data["genre"], data["year_from"], data["year_to"], data["sort"]), 24
    )
    page = paginator.get_page(page_number)
    return JsonResponse(
        {
            "count": paginator.count,
            "page": page.number,
            "num_pages": paginator.num_pages,
            "results": [_movie_json(m) for m in page],
        }
    )


MAX_BODY_BYTES = 4096  # {"stars": 4.5} is 14 bytes


def _posted_stars(request: HttpRequest) -> object:
    """The "stars" of a form or JSON body, or the 400/413 answer for a body that is not one."""
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return _error("Content-Length is not a number")
    if length > MAX_BODY_BYTES:
        return _error(f"the body is {length} bytes; a rating needs at most {MAX_BODY_BYTES}", 413)
    try:
        if request.content_type != "application/json":
            return request.POST.get("stars")
        body = json.loads(request.body or b"{}")
    except RequestDataTooBig:
        return _error(f"the body is larger than {MAX_BODY_BYTES} bytes", 413)
    except (ValueError, UnicodeDecodeError):
        return _error("the body is not valid JSON")
    except RecursionError:  # thousands of nested brackets
        return _error("the body is nested too deeply to be a rating")
    if not isinstance(body, dict):
        return _error('the body must be a JSON object such as {"stars": 4.5}')
    return body.get("stars")


@require_http_methods(["POST", "DELETE"])
@_login_required_json
def rating(request: AuthenticatedHttpRequest, movie_id: int) -> JsonResponse:
    """POST {"stars": 4.5} (JSON or form) rates the movie for the logged-in user; DELETE removes it."""
    refusal = ratelimits.count_request(ratelimits.rating_limits(request.user.id, client_ip(request)))
    movie = get_object_or_404(Movie, id=movie_id)
    if refusal is not None:
        message = f"too many ratings in a short time; this one was not saved, try again in {refusal.retry_after_s} s"
        response = JsonResponse({"error": message, "retry_after_s": refusal.retry_after_s}, status=429)
        response["Retry-After"] = str(refusal.retry_after_s)
        return response
    if request.method == "DELETE":
        return JsonResponse({"movie_id": movie.id, "deleted": services.unrate_movie(request.user, movie)})
    stars = _posted_stars(request)
    if isinstance(stars, JsonResponse):
        return stars
    try:
        saved = services.rate_movie(request.user, movie, stars)
    except services.InvalidStars as error:
        return _error(str(error))
    return JsonResponse({"movie_id": movie.id, "stars": float(saved.stars), "rated_at": saved.rated_at.isoformat()})
