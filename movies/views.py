"""Pages for browsing movies."""
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from movies import selectors


def home(request: HttpRequest) -> HttpResponse:
    return render(request, "movies/home.html", {"movies": selectors.popular_movies(limit=24)})
