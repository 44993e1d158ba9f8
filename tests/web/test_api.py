"""web/api.py: the JSON API through the test client, hostile bodies included."""

import json

import pytest
from django.test import Client

from movies.models import Rating

pytestmark = pytest.mark.django_db


def test_api_rates_unrates_and_requires_login(client: Client, bob, catalogue_movies) -> None:
    movie = catalogue_movies[2]
    assert client.get("/api/recommendations/").status_code == 401
    assert client.post(f"/api/ratings/{movie.id}/", {"stars": "4.5"}).status_code == 401
    client.force_login(bob)
    saved = client.post(f"/api/ratings/{movie.id}/", json.dumps({"stars": 4.5}), content_type="application/json")
    assert saved.status_code == 200 and saved.json()["stars"] == 4.5
    again = client.post(f"/api/ratings/{movie.id}/", {"stars": "2"})
    assert again.json()["stars"] == 2.0 and Rating.objects.filter(user=bob).count() == 1
    assert client.delete(f"/api/ratings/{movie.id}/").json() == {"movie_id": movie.id, "deleted": True}
    assert client.get("/api/recommendations/?k=0").status_code == 400
    assert client.get("/api/recommendations/?k=abc").status_code == 400


def test_api_movie_search_is_paginated_and_bounded(client: Client, catalogue_movies) -> None:
    data = client.get("/api/movies/?q=robot").json()
    assert data["count"] == 11 and data["page"] == 1 and len(data["results"]) == 11
    assert client.get("/api/movies/?q=" + "x" * 5000).status_code == 400
    assert client.get("/api/movies/?page=abc").status_code == 400
    assert client.get("/api/movies/?page=99").json()["page"] == 1


@pytest.mark.parametrize(
    "body, content_type, status",
    [
        (b"[" * 4000, "application/json", 400),  # nested too deep for json.loads, small enough to read
        (b"[" * 200_000, "application/json", 413),
        (b"[1, 2]", "application/json", 400),
        (b'"4.5"', "application/json", 400),
        (b"null", "application/json", 400),
        (b'{"stars": 4.5, "pad": "' + b"x" * 10_000 + b'"}', "application/json", 413),
        (b"stars=4.5&pad=" + b"x" * 3_000_000, "application/x-www-form-urlencoded", 413),
        (b"\xff\xfe", "application/json", 400),
    ],
    ids=["deep", "deep-and-large", "array", "string", "null", "large-json", "large-form", "not-utf8"],
)
def test_the_json_api_answers_hostile_bodies_cleanly(
    client: Client, alice, catalogue_movies, body: bytes, content_type: str, status: int
) -> None:
    client.force_login(alice)
    response = client.post(f"/api/ratings/{catalogue_movies[5].id}/", body, content_type=content_type)
    assert response.status_code == status and "error" in response.json()
    assert not Rating.objects.filter(user=alice, movie=catalogue_movies[5]).exists()
    ok = client.post(f"/api/ratings/{catalogue_movies[5].id}/", b'{"stars": 4.5}', content_type="application/json")
    assert ok.status_code == 200 and ok.json()["stars"] == 4.5
