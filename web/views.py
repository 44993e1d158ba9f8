"""Pages: home, browse and search, movie detail, a tag's movies, For you, your ratings, sign up, the rating form,
the favicon."""

import math
from typing import Any
from urllib.parse import urlsplit

from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.templatetags.static import static
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from movies import selectors, services
from movies.models import Movie, Rating, Tag
from recommender import impressions, serving
from web import ratelimits
from web.clientip import client_ip
from web.forms import STAR_VALUES, RatingForm, SearchForm, SignUpForm
from web.requests import AuthenticatedHttpRequest

ONBOARDING_TARGET = 5
PAGE_SIZE = 24
SUGGESTIONS = 8
SUGGEST_MAX_LENGTH = 100


def home(request: HttpRequest) -> HttpResponse:
    popular = selectors.popular_movies(12)
    user_id = request.user.id if request.user.is_authenticated else None
    return render(
        request,
        "movies/home.html",
        {
            "popular": popular,
            "popular_impression": impressions.log_impression(user_id, "page", "popular", [m.id for m in popular]),
            "recent": selectors.recently_rated_movies(6),
            "genres": selectors.genre_names(),
        },
    )


def movie_list(request: HttpRequest) -> HttpResponse:
    form = SearchForm(request.GET)
    filters = form.cleaned_data if form.is_valid() else {}
    movies = selectors.search_movies(
        filters.get("q", ""),
        filters.get("genre", ""),
        filters.get("year_from"),
        filters.get("year_to"),
        filters.get("sort", ""),
    )
    page = Paginator(movies, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "movies/movie_list.html",
        {
            "form": form,
            "page": page,
            "genres": selectors.genre_names(),
            "ratings": selectors.user_ratings(request.user),
            "sort": filters.get("sort", ""),
            "has_query": bool(filters.get("q")),
        },
    )


def suggest(request: HttpRequest) -> HttpResponse:
    """The header search box's suggestions as you type (an htmx fragment: a listbox of links)."""
    query = request.GET.get("q", "")[:SUGGEST_MAX_LENGTH]
    return render(
        request,
        "movies/includes/suggestions.html",
        {"query": query, "movies": selectors.suggest_movies(query, SUGGESTIONS)},
    )


def movie_detail(request: HttpRequest, movie_id: int) -> HttpResponse:
    movie = get_object_or_404(Movie.objects.prefetch_related("genres"), id=movie_id)
    if "from" in request.GET:  # opened from a list of picks: the click counts for that list
        impressions.clicked(request.user, request.GET["from"], movie.id)
    similar = serving.similar_movies(movie, limit=8, user=request.user)
    return render(
        request,
        "movies/movie_detail.html",
        {
            "movie": movie,
            "similar": impressions.shown(request.user, similar, "page", "similar", movie.id),
            "rating": selectors.user_ratings(request.user).get(movie.id),
            "tags": selectors.movie_tags(movie),
        },
    )


def tag_detail(request: HttpRequest, tag_id: int) -> HttpResponse:
    tag = get_object_or_404(Tag, id=tag_id)
    page = Paginator(selectors.tag_movies(tag), PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request, "movies/tag_detail.html", {"tag": tag, "page": page, "ratings": selectors.user_ratings(request.user)}
    )


@login_required
def recommendations(request: AuthenticatedHttpRequest) -> HttpResponse:
    context = _recommendations_context(request)
    template = (
        "movies/includes/recommendation_list.html"
        if request.headers.get("HX-Request")
        else "movies/recommendations.html"
    )
    return render(request, template, context)


def _recommendations_context(request: AuthenticatedHttpRequest) -> dict[str, Any]:
    num_rated = selectors.rated_count(request.user)
    return {
        "result": impressions.shown(request.user, serving.recommend_movies_for(request.user, limit=20), "page"),
        "num_rated": num_rated,
        "onboarding": selectors.onboarding_movies(request.user, 12) if num_rated < ONBOARDING_TARGET else [],
        "onboarding_target": ONBOARDING_TARGET,
        "ratings": selectors.user_ratings(request.user),
    }


@login_required
def my_ratings(request: AuthenticatedHttpRequest) -> HttpResponse:
    ratings = Rating.objects.filter(user=request.user).select_related("movie").order_by("-rated_at")
    page = Paginator(ratings, 50).get_page(request.GET.get("page"))
    return render(request, "movies/my_ratings.html", {"page": page})


@login_required
def hidden_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    page = Paginator(selectors.hidden_movies(request.user), 50).get_page(request.GET.get("page"))
    return render(request, "movies/hidden.html", {"page": page})


@require_POST
@login_required
def hide(request: AuthenticatedHttpRequest, movie_id: int) -> HttpResponse:
    """ "Not interested" (action=hide) and its undo (action=undo): htmx gets the card's new state back, a plain
    form post returns to the page it came from."""
    movie = get_object_or_404(Movie.objects.prefetch_related("genres"), id=movie_id)
    undo = request.POST.get("action") == "undo"
    if undo:
        services.unhide_movie(request.user, movie)
    else:
        services.hide_movie(request.user, movie)
    if request.headers.get("HX-Request"):
        return render(request, "movies/includes/hidden_card.html", {"movie": movie, "is_hidden": not undo})
    return redirect(_safe_next(request, request.POST.get("next", ""), movie))


@require_POST
@login_required
def rate(request: AuthenticatedHttpRequest, movie_id: int) -> HttpResponse:
    """Saves a rating; htmx gets the refreshed widget back, a plain form post is redirected."""
    refusal = ratelimits.count_request(ratelimits.rating_limits(request.user.id, client_ip(request)))
    movie = get_object_or_404(Movie, id=movie_id)
    if refusal is not None:
        return _rating_refused(request, movie, refusal)
    form = RatingForm(request.POST)
    if request.POST.get("action") == "clear":
        services.unrate_movie(request.user, movie)
        rating, status = None, "Rating removed."
    elif form.is_valid():
        rating = services.rate_movie(request.user, movie, form.cleaned_data["stars"])
        status = f"Saved: {rating.stars.normalize():f} star{'' if rating.stars == 1 else 's'}."
    else:
        return HttpResponseBadRequest("Choose between 0.5 and 5 stars in half steps.")
    if request.headers.get("HX-Request"):
        response = _star_widget(request, movie, rating, status)
        response["HX-Trigger"] = "rated"
        return response
    return redirect(_safe_next(request, request.POST.get("next", ""), movie))


def _star_widget(
    request: HttpRequest, movie: Movie, rating: Rating | None, status: str, code: int = 200
) -> HttpResponse:
    # The widget's form posts here; its "next" must stay the page it sits on, not this URL.
    page = urlsplit(request.headers.get("HX-Current-URL", ""))
    next_url = _safe_next(request, page.path + (f"?{page.query}" if page.query else ""), movie)
    return render(
        request,
        "movies/includes/star_widget.html",
        {
            "movie": movie,
            "rating": rating,
            "status": status,
            "is_refused": code == 429,
            "star_values": STAR_VALUES,
            "next_url": next_url,
        },
        status=code,
    )


def _rating_refused(request: AuthenticatedHttpRequest, movie: Movie, refusal: ratelimits.Refusal) -> HttpResponse:
    """429: the widget keeps the saved rating and says why the new one was not saved."""
    message = f"Too many ratings in a short time, so this one was not saved. Try again in {_wait(refusal)}."
    if request.headers.get("HX-Request"):
        saved = Rating.objects.filter(user=request.user, movie=movie).first()
        response = _star_widget(request, movie, saved, message, code=429)
    else:
        context = {"message": message, "back_url": _safe_next(request, request.POST.get("next", ""), movie)}
        response = render(request, "too_many_requests.html", context, status=429)
    response["Retry-After"] = str(refusal.retry_after_s)
    return response


def _wait(refusal: ratelimits.Refusal) -> str:
    seconds = refusal.retry_after_s
    if seconds < 120:
        return f"{seconds} second{'' if seconds == 1 else 's'}"
    return f"{math.ceil(seconds / 60)} minutes"


def _safe_next(request: HttpRequest, target: str, movie: Movie) -> str:
    """A page of this site to return to; never the rating endpoint itself (it only takes POSTs)."""
    is_safe = url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure())
    if not is_safe or not target or urlsplit(target).path == reverse("rate", args=[movie.id]):
        return movie_url(movie)
    return target


def movie_url(movie: Movie) -> str:
    return reverse("movie_detail", args=[movie.id])


def favicon(request: HttpRequest) -> HttpResponse:
    """/favicon.ico, which browsers ask for whatever the pages' <link rel="icon"> says, is the site's SVG icon.
    A temporary redirect: the icon's static URL changes with its content."""
    return redirect(static("favicon.svg"))


def signup(request: HttpRequest) -> HttpResponse:
    form = SignUpForm(request.POST or None)
    if request.method != "POST":
        return render(request, "registration/signup.html", {"form": form})
    limits = ratelimits.signup_limits(client_ip(request))
    refusal = ratelimits.count_request(limits)
    if refusal is not None:
        message = f"Too many accounts were made from your network just now. Please try again in {_wait(refusal)}."
        retry = SignUpForm(initial={"username": request.POST.get("username", "")[:150]})
        response = render(request, "registration/signup.html", {"form": retry, "refusal": message}, status=429)
        response["Retry-After"] = str(refusal.retry_after_s)
        return response
    if not form.is_valid():
        ratelimits.uncount_request(limits)  # only accounts made count, so a typo costs no place
        return render(request, "registration/signup.html", {"form": form})
    user = form.save()
    services.create_site_profile(user)
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    return redirect("recommendations")
