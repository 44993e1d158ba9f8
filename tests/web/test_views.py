"""web/views.py: the pages through the test client (a few tests post to a page and the JSON API alike)."""

import json
from decimal import Decimal

import pytest
from django.test import Client, override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from movies.models import Profile, Rating
from tests.conftest import requires_milvus

pytestmark = pytest.mark.django_db


def test_pages_render_and_escape_html_in_titles(client: Client, alice, catalogue_movies) -> None:
    for url in ("/", "/movies/", f"/movies/{catalogue_movies[11].id}/", "/movies/?genre=Drama"):
        response = client.get(url)
        assert response.status_code == 200, url
        body = response.content.decode()
        assert '<script>alert("x")</script>' not in body
    detail = client.get(f"/movies/{catalogue_movies[11].id}/").content.decode()
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in detail


@pytest.mark.parametrize("query", ["?page=abc", "?page=999999", "?page=-1", "?q=" + "x" * 5000, "?year_from=abc"])
def test_odd_query_strings_never_fail(client: Client, catalogue_movies, query: str) -> None:
    assert client.get("/movies/" + query).status_code == 200


def test_missing_movie_is_404(client: Client, db) -> None:
    assert client.get("/movies/999999/").status_code == 404


def test_rating_needs_a_csrf_token(alice, catalogue_movies) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    movie = catalogue_movies[5]
    assert client.post(f"/movies/{movie.id}/rate/", {"stars": "4.0"}).status_code == 403
    assert client.post(f"/api/ratings/{movie.id}/", {"stars": "4.0"}).status_code == 403
    assert not Rating.objects.filter(user=alice, movie=movie).exists()
    client.get(f"/movies/{movie.id}/")
    token = client.cookies["csrftoken"].value
    response = client.post(
        f"/movies/{movie.id}/rate/", {"stars": "4.0"}, HTTP_X_CSRFTOKEN=token, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200 and response["HX-Trigger"] == "rated"
    assert "Saved: 4 stars." in response.content.decode()
    assert Rating.objects.get(user=alice, movie=movie).stars == Decimal("4.0")


def test_the_rater_is_always_the_logged_in_user(client: Client, alice, bob, catalogue_movies) -> None:
    client.force_login(bob)
    movie = catalogue_movies[0]
    response = client.post(f"/movies/{movie.id}/rate/", {"stars": "0.5", "user": alice.id, "user_id": alice.id})
    assert response.status_code == 302
    assert Rating.objects.get(user=alice, movie=movie).stars == Decimal("5.0")
    assert Rating.objects.get(user=bob, movie=movie).stars == Decimal("0.5")


def test_plain_form_post_redirects_back_and_only_to_this_site(client: Client, bob, catalogue_movies) -> None:
    client.force_login(bob)
    movie = catalogue_movies[3]
    assert client.post(f"/movies/{movie.id}/rate/", {"stars": "3.5", "next": "/for-you/"})["Location"] == "/for-you/"
    evil = client.post(f"/movies/{movie.id}/rate/", {"stars": "3.5", "next": "https://evil.example/"})
    assert evil["Location"] == f"/movies/{movie.id}/"
    assert client.post(f"/movies/{movie.id}/rate/", {"action": "clear"}).status_code == 302
    assert not Rating.objects.filter(user=bob).exists()


# 120 posts by one user in one database transaction: over the rating limits, which this test is not about.
@override_settings(RATING_LIMIT_PER_USER=0, RATING_LIMIT_PER_ADDRESS=0)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    stars=st.one_of(
        st.sampled_from(["0", "6", "-1", str(2**63), "3.7", "5.5", "nan", "inf", "", "\x00", "x" * 10_000, "٣", "‮4"]),
        st.text(max_size=50).filter(
            lambda s: s.strip() not in {f"{h / 2:g}" for h in range(1, 11)} | {f"{h / 2:.1f}" for h in range(1, 11)}
        ),
        st.integers().filter(lambda n: not 1 <= n <= 5),
    )
)
def test_bad_stars_give_400_and_no_row(client: Client, bob, catalogue_movies, stars: object) -> None:
    client.force_login(bob)
    movie = catalogue_movies[4]
    page = client.post(f"/movies/{movie.id}/rate/", {"stars": str(stars)})
    api = client.post(f"/api/ratings/{movie.id}/", json.dumps({"stars": stars}), content_type="application/json")
    assert page.status_code == 400 and api.status_code in (400, 413)  # 413: a body over the API's 4 kB
    assert not Rating.objects.filter(user=bob).exists()


def test_signup_logs_in_and_starts_onboarding(client: Client, alice, catalogue_movies) -> None:
    response = client.post(
        "/signup/", {"username": "carol", "password1": "Stars-and-Popcorn-77", "password2": "Stars-and-Popcorn-77"}
    )
    assert response.status_code == 302 and response["Location"] == "/for-you/"
    assert Profile.objects.get(user__username="carol").source == Profile.Source.SITE
    page = client.get("/for-you/").content.decode()
    assert "Rate a few movies you know" in page and "You have rated 0 of the 5" in page


def test_logged_out_session_cookie_is_rejected(alice) -> None:
    client = Client()
    client.force_login(alice)
    old_session = client.cookies["sessionid"].value
    client.post("/logout/")
    replay = Client()
    replay.cookies["sessionid"] = old_session
    assert replay.get("/for-you/").status_code == 302
    assert replay.get("/api/recommendations/").status_code == 401


@requires_milvus
def test_for_you_changes_right_after_a_rating(client: Client, bob, alice, live_embeddings, catalogue_movies) -> None:
    client.force_login(bob)
    before = client.get("/for-you/", HTTP_HX_REQUEST="true").content.decode()
    assert "Rate a few movies" in before
    client.post(f"/movies/{catalogue_movies[8].id}/rate/", {"stars": "5"})
    after = client.get("/for-you/", HTTP_HX_REQUEST="true").content.decode()
    assert "Because you liked Robot Garden 9" in after, after[:300]
    assert after != before


@requires_milvus
def test_personal_pages_read_no_aggregate_over_the_ratings_table(client: Client, alice, live_embeddings) -> None:
    """At 25M ratings an aggregate over the table is a scan: 'For you' and the recommendations API read only
    the person's own ratings (by user, on the (user, movie) index), and counts and means from the movies table."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.force_login(alice)
    for url in ("/for-you/", "/api/recommendations/"):
        with CaptureQueriesContext(connection) as queries:
            response = client.get(url)
        assert response.status_code == 200
        assert "Robot Garden" in response.content.decode(), url  # personal picks, not the popular fallback
        over_ratings = [q["sql"] for q in queries if "movies_rating" in q["sql"]]
        assert over_ratings, url  # the page did read the person's ratings
        not_by_user = [s for s in over_ratings if f'"user_id" = {alice.id}' not in s.replace("`", '"')]
        assert not not_by_user, (url, not_by_user)
        grouped = [s for s in over_ratings if "GROUP BY" in s.upper()]
        assert not grouped, (url, grouped)


def test_posting_the_same_stars_again_marks_no_change(client: Client, bob, catalogue_movies) -> None:
    from recommender.models import RecommenderState

    client.force_login(bob)
    movie = catalogue_movies[6]
    assert client.post(f"/movies/{movie.id}/rate/", {"stars": "3"}).status_code == 302
    rated_at, num_changes = Rating.objects.get(user=bob).rated_at, RecommenderState.current().num_changes
    for _ in range(3):
        page = client.post(f"/movies/{movie.id}/rate/", {"stars": "3.0"}, HTTP_HX_REQUEST="true")
        assert page.status_code == 200 and "Saved: 3 stars." in page.content.decode()
        api = client.post(f"/api/ratings/{movie.id}/", json.dumps({"stars": 3}), content_type="application/json")
        assert api.status_code == 200 and api.json()["rated_at"] == rated_at.isoformat()
    assert Rating.objects.get(user=bob).rated_at == rated_at
    assert RecommenderState.current().num_changes == num_changes


def test_favicon_ico_leads_to_the_icon_every_page_links(client: Client, db) -> None:
    from django.contrib.staticfiles import finders
    from django.templatetags.static import static

    response = client.get("/favicon.ico")
    assert response.status_code == 302 and response["Location"] == static("favicon.svg")
    assert f'<link rel="icon" href="{static("favicon.svg")}"' in client.get("/").content.decode()
    with open(finders.find("favicon.svg"), encoding="utf-8") as icon:
        assert icon.read().startswith("<svg ")


def test_a_movie_page_shows_its_top_tags_each_linking_to_the_tags_movies(client: Client, catalogue_movies) -> None:
    from movies.models import MovieTag, Tag

    robots, quiet, weak = (Tag.objects.create(name=n) for n in ("robots", "quiet <b>", "barely"))
    first, second = catalogue_movies[0], catalogue_movies[1]
    MovieTag.objects.create(movie=first, tag=robots, num_people=2, strength=0.7)
    MovieTag.objects.create(movie=second, tag=robots, num_people=0, relevance=0.9, strength=0.9)
    MovieTag.objects.create(movie=first, tag=quiet, num_people=1, strength=0.6)
    MovieTag.objects.create(movie=first, tag=weak, num_people=0, relevance=0.2, strength=0.2)
    page = client.get(f"/movies/{first.id}/").content.decode()
    assert page.index(f'href="/tags/{robots.id}/">robots</a>') < page.index("quiet &lt;b&gt;</a>")
    assert "barely" not in page  # the genome's 0.2 does not describe it
    listing = client.get(f"/tags/{robots.id}/").content.decode()
    assert "Movies tagged “robots”" in listing and "2 movies" in listing
    assert listing.index(second.display_title) < listing.index(first.display_title)  # strongest first
    assert client.get("/tags/999999/").status_code == 404


def test_removing_a_rating_without_javascript_after_an_htmx_save_returns_to_the_page(
    client: Client, bob, catalogue_movies
) -> None:
    client.force_login(bob)
    movie = catalogue_movies[0]
    page = f"/movies/{movie.id}/"
    widget = client.post(
        f"/movies/{movie.id}/rate/",
        {"stars": "4.0", "next": page},
        HTTP_HX_REQUEST="true",
        HTTP_HX_CURRENT_URL=f"http://testserver{page}",
    ).content.decode()
    assert f'name="next" value="{page}"' in widget
    removed = client.post(f"/movies/{movie.id}/rate/", {"action": "clear", "next": f"/movies/{movie.id}/rate/"})
    assert removed.status_code == 302 and removed["Location"] == page
    assert client.get(removed["Location"]).status_code == 200
    assert not Rating.objects.filter(user=bob, movie=movie).exists()
