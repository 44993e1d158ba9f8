"""Not interested, across the layers it crosses (serving, the pages, the API): a person hides a pick, it leaves
every list they are shown, with an undo on the spot and a page of what they hid; the API also takes exclude=
per request. The service itself is tested in tests/movies/test_services.py."""

import pytest
from django.test import Client

from movies import services
from movies.models import HiddenMovie
from recommender import serving
from tests.conftest import requires_milvus

pytestmark = pytest.mark.django_db


def _logged_in(user: object) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_a_hidden_movie_leaves_the_popular_list_and_exclude_leaves_it_for_one_request(bob, alice) -> None:
    first = serving.recommend_movies_for(bob, limit=5)
    top = first.items[0].movie
    services.hide_movie(bob, top)
    again = serving.recommend_movies_for(bob, limit=5)
    assert [i.movie.id for i in again.items] == [i.movie.id for i in first.items[1:]]
    services.unhide_movie(bob, top)
    skipped = serving.recommend_movies_for(bob, limit=5, exclude=frozenset({top.id}))
    assert top.id not in [i.movie.id for i in skipped.items]
    assert serving.recommend_movies_for(bob, limit=5).items[0].movie.id == top.id  # per request only


@requires_milvus
def test_a_hidden_movie_leaves_personal_picks_and_similar_movies_and_the_rest_fill_in(
    alice, live_embeddings, catalogue_movies
) -> None:
    before = [i.movie.id for i in serving.recommend_movies_for(alice, limit=5).items]
    hidden = next(m for m in catalogue_movies if m.id == before[0])
    services.hide_movie(alice, hidden)
    after = [i.movie.id for i in serving.recommend_movies_for(alice, limit=5).items]
    assert hidden.id not in after and after[:4] == before[1:5] and len(after) == 5
    similar = serving.similar_movies(catalogue_movies[0], limit=5, user=alice)  # hidden by her, as on the page
    assert hidden.id not in [i.movie.id for i in similar.items] and len(similar.items) == 5
    assert hidden.id in [i.movie.id for i in serving.similar_movies(catalogue_movies[0], limit=5).items]


def test_not_interested_on_the_page_hides_at_once_with_an_undo(alice, catalogue_movies, co_raters) -> None:
    client = _logged_in(alice)
    page = client.get("/for-you/").content.decode()
    assert "Not interested" in page
    target = next(m for m in catalogue_movies if f'action="/movies/{m.id}/hide/"' in page)
    shown_beside = next(
        m
        for m in catalogue_movies
        if target.display_title in client.get(f"/movies/{m.id}/").content.decode() and m != target
    )
    answer = client.post(f"/movies/{target.id}/hide/", {"action": "hide"}, HTTP_HX_REQUEST="true").content.decode()
    assert f"Hidden: {target.display_title}" in answer and 'value="undo"' in answer
    assert f'action="/movies/{target.id}/hide/"' not in client.get("/for-you/").content.decode()
    assert target.display_title in client.get("/hidden/").content.decode()
    assert target.display_title not in client.get(f"/movies/{shown_beside.id}/").content.decode()  # More like this
    undone = client.post(f"/movies/{target.id}/hide/", {"action": "undo"}, HTTP_HX_REQUEST="true").content.decode()
    assert "Not interested" in undone and not HiddenMovie.objects.exists()
    # Without JavaScript the form posts and returns to where it came from.
    response = client.post(f"/movies/{target.id}/hide/", {"action": "hide", "next": "/for-you/"})
    assert response.status_code == 302 and response["Location"] == "/for-you/"


def test_the_api_hides_unhides_and_takes_exclude(alice, catalogue_movies, co_raters) -> None:
    client = _logged_in(alice)
    movie = catalogue_movies[9]
    assert client.post(f"/api/hidden/{movie.id}/").json() == {"movie_id": movie.id, "hidden": True, "changed": True}
    assert HiddenMovie.objects.filter(user=alice, movie=movie).exists()
    assert client.delete(f"/api/hidden/{movie.id}/").json()["changed"] is True
    picks = client.get("/api/recommendations/", {"k": 5}).json()["results"]
    first = picks[0]["movie_id"]
    without = client.get("/api/recommendations/", {"k": 5, "exclude": f"{first}, 99999"}).json()["results"]
    assert first not in [p["movie_id"] for p in without]
    for bad in ("1,x", "-3", ",".join(["1"] * 501)):
        assert client.get("/api/recommendations/", {"exclude": bad}).status_code == 400, bad
    assert Client().post(f"/api/hidden/{movie.id}/").status_code == 401
    assert client.post("/api/hidden/999999/").status_code == 404
