"""movies/search.py: title search and suggestions, with Browse's orders and the stored rating statistics the
pages read."""

import os
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.db.models import Avg, Count
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from movies import search, selectors, services
from movies.models import Genre, Movie, Rating
from movies.stats import PRIOR_RATINGS, refresh_movie_stats
from tests.conftest import ROOT, subprocess_database_url

pytestmark = pytest.mark.django_db


def _movie(title: str, year: int | None, num_ratings: int = 0, stars: str = "4", genre: Genre | None = None) -> Movie:
    movie = Movie.objects.create(title=title, year=year)
    if genre:
        movie.genres.add(genre)
    users = get_user_model().objects
    for k in range(num_ratings):
        user = users.get_or_create(username=f"rater{k}")[0]
        Rating.objects.create(user=user, movie=movie, stars=Decimal(stars), rated_at=datetime(2020, 1, 1, tzinfo=UTC))
    return movie


@pytest.fixture
def films() -> dict[str, Movie]:
    scifi = Genre.objects.create(name="Sci-Fi")
    made = {
        "matrix": _movie("Matrix, The (1999)", 1999, 30, "4.5", scifi),
        "reloaded": _movie("Matrix Reloaded, The (2003)", 2003, 12, "3.5", scifi),
        "animatrix": _movie("Animatrix, The (2003)", 2003, 2),
        "shawshank": _movie("Shawshank Redemption, The (1994)", 1994, 35, "5"),
        "godfather": _movie("Godfather, The (1972)", 1972, 25, "5"),
        "godfather2": _movie("Godfather: Part II, The (1974)", 1974, 15, "4.5"),
        "star_wars": _movie("Star Wars: Episode IV - A New Hope (1977)", 1977, 28, "4.5", scifi),
        "empire_dreams": _movie("Empire of Dreams: The Story of the 'Star Wars' Trilogy (2004)", 2004, 1),
        "nineteen84": _movie("1984 (Nineteen Eighty-Four) (1984)", 1984, 3),
        "terminator": _movie("Terminator, The (1984)", 1984, 20, "4", scifi),
        "odyssey": _movie("2001: A Space Odyssey (1968)", 1968, 18, "4", scifi),
        "amelie": _movie("Amelie (Fabuleux destin d'Amélie Poulain, Le) (2001)", 2001, 16),
        "spiderman": _movie("Spider-Man (2002)", 2002, 10, "3.5"),
        "one_five_star": _movie("Obscure Gem (2010)", 2010, 1, "5"),
    }
    refresh_movie_stats()
    return made


def _top(query: str, n: int = 3) -> list[str]:
    return [m.display_title for m in selectors.suggest_movies(query, n)]


def test_titles_people_type_find_the_movie_they_mean(films) -> None:
    assert _top("The Matrix")[0] == "The Matrix (1999)"
    assert _top("matrix")[:2] == ["The Matrix (1999)", "The Matrix Reloaded (2003)"]
    assert _top("star wars")[0] == "Star Wars: Episode IV - A New Hope (1977)"
    assert _top("wars star")[0] == "Star Wars: Episode IV - A New Hope (1977)"  # word order
    assert _top("THE SHAWSHANK redemption!")[0] == "The Shawshank Redemption (1994)"
    assert _top("amélie")[0].startswith("Amelie") and _top("AMELIE")[0].startswith("Amelie")
    assert _top("spiderman")[0] == "Spider-Man (2002)" and _top("spider man")[0] == "Spider-Man (2002)"


def test_one_or_two_typos_still_find_it(films) -> None:
    assert _top("shawshenk")[0] == "The Shawshank Redemption (1994)"
    assert _top("godfater")[:2] == ["The Godfather (1972)", "The Godfather: Part II (1974)"]
    assert _top("shawshnak redemptoin")[0] == "The Shawshank Redemption (1994)"  # two edits in a long word


def test_a_year_favours_that_year_without_hiding_numbered_titles(films) -> None:
    assert _top("matrix 2003")[0] == "The Matrix Reloaded (2003)"
    assert _top("matrix 1999")[0] == "The Matrix (1999)"
    assert "The Matrix (1999)" in _top("matrix 2003", 5)  # favoured, not filtered
    assert _top("1984")[0] == "1984 (Nineteen Eighty-Four) (1984)"
    assert "The Terminator (1984)" in _top("1984", 5)
    assert _top("2001")[0] == "2001: A Space Odyssey (1968)"


def test_as_you_type_the_last_word_may_be_partial(films) -> None:
    assert _top("the godf")[0] == "The Godfather (1972)"
    assert _top("shaw")[0] == "The Shawshank Redemption (1994)"


def test_hostile_queries_answer_normally(client: Client, films) -> None:
    for query in [
        "",
        "   ",
        "x" * 10_000,
        "'; DROP TABLE movies_movie; --",
        ".*(a+)+$",
        "[[[",
        "%_%",
        "🎬🍿",
        "Матрица 黑客帝国",
        "\x00",
        "a" * 100,
    ]:
        assert client.get("/movies/", {"q": query}).status_code == 200
        assert client.get("/movies/suggest/", {"q": query}).status_code == 200
        assert client.get("/api/movies/", {"q": query}).status_code in (200, 400)
    assert client.get("/api/movies/", {"q": "x" * 101}).status_code == 400
    assert Movie.objects.count() == len(films)
    page = client.get("/api/movies/", {"q": "matrix", "page": 999}).json()
    assert page["page"] == page["num_pages"] == 1 and page["results"]


def test_page_and_api_use_the_same_search(client: Client, films) -> None:
    api = [r["title"] for r in client.get("/api/movies/", {"q": "godfater"}).json()["results"]]
    body = client.get("/movies/", {"q": "godfater"}).content.decode()
    assert api[:2] == ["The Godfather (1972)", "The Godfather: Part II (1974)"]
    assert body.index("The Godfather (1972)") < body.index("The Godfather: Part II (1974)")
    result = client.get("/api/movies/", {"q": "matrix"}).json()["results"][0]
    assert result["movielens_title"] == "Matrix, The (1999)" and result["num_ratings"] == 30


def test_suggestions_are_a_listbox_of_links(client: Client, films) -> None:
    body = client.get("/movies/suggest/", {"q": "godfa"}).content.decode()
    assert body.count('role="option"') == 2
    assert f'data-href="/movies/{films["godfather"].id}/"' in body
    assert client.get("/movies/suggest/", {"q": "zzzzzz"}).content.decode().strip() == ""
    header = client.get("/").content.decode()
    assert 'role="combobox"' in header and 'aria-controls="site-suggestions"' in header


def test_browse_sorts_and_keeps_the_sort_across_pages(client: Client, films) -> None:
    def first(params: dict) -> str:
        return client.get("/movies/", params).context["page"].object_list[0].display_title

    assert first({}) == "The Shawshank Redemption (1994)"  # most popular by default
    assert first({"sort": "rated"}) == "The Shawshank Redemption (1994)"
    assert films["one_five_star"].display_title != first({"sort": "rated"})  # one 5-star rating does not top it
    assert first({"sort": "newest"}) == "Obscure Gem (2010)"
    assert first({"sort": "title"}) == "1984 (Nineteen Eighty-Four) (1984)"
    assert first({"sort": "popular", "genre": "Sci-Fi", "year_from": 1990}) == "The Matrix (1999)"
    assert first({"q": "matrix", "sort": "newest"}) in ("The Matrix Reloaded (2003)", "The Animatrix (2003)")
    for i in range(30):
        Movie.objects.create(title=f"Filler {i:02d} (2000)", year=2000)
    response = client.get("/movies/", {"sort": "title"})
    assert 'href="?sort=title&amp;page=2"' in response.content.decode()
    assert (
        client.get("/movies/", {"sort": "title", "page": 2}).context["page"].object_list[0].display_title
        == "Filler 20 (2000)"
    )
    assert client.get("/movies/", {"sort": "sideways"}).status_code == 200


def test_stored_statistics_follow_every_rating_write(client: Client, films, bob) -> None:
    movie = films["animatrix"]
    services.rate_movie(bob, movie, "5")
    services.rate_movie(bob, movie, "2.5")
    services.unrate_movie(bob, films["matrix"])  # bob never rated it: nothing changes
    services.rate_movie(bob, films["matrix"], "1")
    services.unrate_movie(bob, films["matrix"])
    truth = {m["movie"]: m for m in Rating.objects.values("movie").annotate(n=Count("id"), mean=Avg("stars"))}
    for stored in Movie.objects.all():
        expected = truth.get(stored.id, {"n": 0, "mean": None})
        assert stored.num_ratings == expected["n"], stored
        assert (stored.mean_stars is None) == (expected["mean"] is None)
        if expected["mean"] is not None:
            assert stored.mean_stars == pytest.approx(float(expected["mean"]))
    movie.refresh_from_db()
    assert movie.num_ratings == 3 and movie.mean_stars == pytest.approx((4 + 4 + 2.5) / 3)
    damped = Movie.objects.get(id=films["one_five_star"].id).rated_score
    assert damped < Movie.objects.get(id=films["shawshank"].id).rated_score
    mean = float(Rating.objects.aggregate(mean=Avg("stars"))["mean"])
    assert damped == pytest.approx((5 + PRIOR_RATINGS * mean) / (1 + PRIOR_RATINGS), rel=0.02)


def test_pages_that_list_movies_do_not_aggregate_ratings(client: Client, films) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for url in ("/", "/movies/", "/movies/?q=matrix", f"/movies/{films['matrix'].id}/", "/api/movies/?q=star"):
        with CaptureQueriesContext(connection) as queries:
            assert client.get(url).status_code == 200
        aggregates = [
            q["sql"]
            for q in queries
            if "movies_rating" in q["sql"] and any(f in q["sql"].upper() for f in ("COUNT(", "AVG(", "SUM("))
        ]
        assert not aggregates, (url, aggregates)


@pytest.mark.django_db(transaction=True)
def test_another_process_changing_movies_refreshes_this_process_index(films) -> None:
    assert _top("zeitgeist") == []
    code = (
        "from movies.models import Movie; from movies import services; "
        "Movie.objects.create(title='Zeitgeist, The (2007)', year=2007); services.note_catalogue_changed()"
    )
    result = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "shell", "-c", code],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": subprocess_database_url()},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert _top("zeitgeist") == ["The Zeitgeist (2007)"]
    Movie.objects.filter(title__startswith="Zeitgeist").delete()
    services.note_catalogue_changed()
    assert _top("zeitgeist") == []


def test_a_rename_in_admin_or_shell_is_searchable_at_once(films) -> None:
    movie = films["animatrix"]
    movie.title = "Animatrix Redux, The (2003)"
    movie.save()
    assert movie.display_title == "The Animatrix Redux (2003)"
    assert _top("animatrix redux") == ["The Animatrix Redux (2003)"]
    assert search.search_ids("redux") == [movie.id]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=st.text(max_size=300))
def test_any_text_is_a_normal_answer(client: Client, films, query: str) -> None:
    assert client.get("/movies/", {"q": query}).status_code == 200
    assert client.get("/movies/suggest/", {"q": query}).status_code == 200
    assert client.get("/api/movies/", {"q": query}).status_code in (200, 400)


@pytest.fixture
def series() -> dict[str, Movie]:
    """Franchises, numbered parts and alternative titles, as MovieLens writes them."""
    made = {
        "fellowship": _movie("Lord of the Rings: The Fellowship of the Ring, The (2001)", 2001, 30),
        "towers": _movie("Lord of the Rings: The Two Towers, The (2002)", 2002, 26),
        "king": _movie("Lord of the Rings: The Return of the King, The (2003)", 2003, 27),
        "lot_like_love": _movie("Lot Like Love, A (2005)", 2005, 3),
        "new_hope": _movie("Star Wars: Episode IV - A New Hope (1977)", 1977, 40),
        "empire": _movie("Star Wars: Episode V - The Empire Strikes Back (1980)", 1980, 35),
        "phantom": _movie("Star Wars: Episode I - The Phantom Menace (1999)", 1999, 20),
        "holiday": _movie("Star Wars Holiday Special, The (1978)", 1978, 1),
        "raiders": _movie("Raiders of the Lost Ark (Indiana Jones and the Raiders of the Lost Ark) (1981)", 1981, 30),
        "doom": _movie("Indiana Jones and the Temple of Doom (1984)", 1984, 12),
        "crusade": _movie("Indiana Jones and the Last Crusade (1989)", 1989, 20),
        "stone": _movie(
            "Harry Potter and the Sorcerer's Stone (a.k.a. Harry Potter and the Philosopher's Stone) (2001)", 2001, 20
        ),
        "chamber": _movie("Harry Potter and the Chamber of Secrets (2002)", 2002, 15),
        "azkaban": _movie("Harry Potter and the Prisoner of Azkaban (2004)", 2004, 18, "5"),
        "godfather2": _movie("Godfather: Part II, The (1974)", 1974, 15),
        "oceans": _movie("Ocean's Eleven (2001)", 2001, 12),
        "toy2": _movie("Toy Story 2 (1999)", 1999, 12),
        "kill_bill": _movie("Kill Bill: Vol. 1 (2003)", 2003, 12),
        "robot": _movie("I, Robot (2004)", 2004, 8),
        "mash": _movie("M*A*S*H (a.k.a. MASH) (1970)", 1970, 5),
        "walle": _movie("WALL·E (2008)", 2008, 10),
        "seven": _movie("Seven (a.k.a. Se7en) (1995)", 1995, 15),
        "die_hard": _movie("Die Hard (1988)", 1988, 20),
        "die_hard2": _movie("Die Hard 2 (1990)", 1990, 10),
        "vengeance": _movie("Die Hard: With a Vengeance (1995)", 1995, 9),
        "hard_day": _movie("Hard Day's Night, A (1964)", 1964, 8),
        "amelie": _movie("Amelie (Fabuleux destin d'Amélie Poulain, Le) (2001)", 2001, 16),
        "terminator2": _movie("Terminator 2: Judgment Day (1991)", 1991, 20),
    }
    refresh_movie_stats()
    return made


def test_initialisms_find_the_series_they_abbreviate(series) -> None:
    # All three before "A Lot Like Love", which is one typo away.
    assert set(_top("lotr")) == {m.display_title for m in (series["fellowship"], series["towers"], series["king"])}
    assert _top("t2")[0] == "Terminator 2: Judgment Day (1991)"


def test_numbers_match_in_any_form(series) -> None:
    empire = "Star Wars: Episode V - The Empire Strikes Back (1980)"
    for query in ("star wars 5", "star wars episode v", "star wars v", "star wars episode five"):
        assert _top(query)[0] == empire, query
    for query in ("godfather part 2", "godfather part ii", "godfather part two", "godfather 2"):
        assert _top(query)[0] == "The Godfather: Part II (1974)", query
    assert _top("oceans 11")[0] == "Ocean's Eleven (2001)"
    assert _top("toy story ii")[0] == _top("toy story two")[0] == "Toy Story 2 (1999)"
    assert _top("kill bill vol i")[0] == _top("kill bill volume one")[0] == "Kill Bill: Vol. 1 (2003)"
    assert _top("i robot")[0] == "I, Robot (2004)"  # "I" names no number here
    assert (
        _top("star wars episode i")[0] == _top("star wars 1")[0] == "Star Wars: Episode I - The Phantom Menace (1999)"
    )


def test_alternative_titles_count_as_titles(series) -> None:
    assert _top("indiana jones")[0].startswith("Raiders of the Lost Ark")  # its a.k.a. title starts with it
    assert _top("philosophers stone")[0].startswith("Harry Potter and the Sorcerer's Stone")
    assert _top("le fabuleux destin")[0].startswith("Amelie")
    assert _top("mash")[0].startswith("M*A*S*H") and _top("m*a*s*h")[0].startswith("M*A*S*H")


def test_stylised_spellings(series) -> None:
    assert _top("walle")[0] == _top("wall-e")[0] == _top("wall e")[0] == "WALL·E (2008)"
    assert _top("se7en")[0] == "Seven (a.k.a. Se7en) (1995)"


def test_a_franchise_lists_its_best_known_film_first_then_the_series_in_release_order(series) -> None:
    assert _top("harry potter") == [series[k].display_title for k in ("stone", "chamber", "azkaban")]
    assert _top("star wars", 4) == [series[k].display_title for k in ("new_hope", "empire", "phantom", "holiday")]
    assert _top("indiana jones") == [series[k].display_title for k in ("raiders", "doom", "crusade")]


def test_a_series_name_and_a_number_no_title_carries_finds_that_entry(series) -> None:
    assert _top("harry potter 3")[0] == "Harry Potter and the Prisoner of Azkaban (2004)"
    assert _top("lord of the rings 2")[0] == "The Lord of the Rings: The Two Towers (2002)"
    assert _top("die hard 3")[0] == "Die Hard: With a Vengeance (1995)"  # not "A Hard Day's Night"
    assert _top("harry potter 9") == []  # no ninth: nothing rather than a wrong film


def test_search_matches_tags_after_titles(films) -> None:
    from movies.models import MovieTag, Tag

    time_travel, pixar = Tag.objects.create(name="time travel"), Tag.objects.create(name="Pixar animation")
    MovieTag.objects.create(movie=films["terminator"], tag=time_travel, num_people=3, strength=0.8)
    MovieTag.objects.create(movie=films["matrix"], tag=time_travel, num_people=0, relevance=0.3, strength=0.3)
    MovieTag.objects.create(movie=films["amelie"], tag=pixar, num_people=1, strength=0.6)
    services.note_catalogue_changed()
    assert _top("time travel") == ["The Terminator (1984)"]  # the genome's 0.3 does not describe The Matrix
    assert _top("pixar")[0].startswith("Amelie") and _top("pix")[0].startswith("Amelie")  # as you type
    assert _top("matrix")[0] == "The Matrix (1999)"


def test_a_title_match_comes_before_a_tag_match(films) -> None:
    from movies.models import MovieTag, Tag

    MovieTag.objects.create(movie=films["odyssey"], tag=Tag.objects.create(name="godfather homage"), strength=0.9)
    services.note_catalogue_changed()
    assert _top("godfather", 4) == [
        "The Godfather (1972)",
        "The Godfather: Part II (1974)",
        "2001: A Space Odyssey (1968)",
    ]
