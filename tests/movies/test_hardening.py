"""Bad input and leaks the site must survive: secrets in logs, reserved names, hostile JSON, stale form targets."""

import io
import stat
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import Client, override_settings

from movies.models import Profile, Rating

pytestmark = pytest.mark.django_db


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@override_settings(STAFF_USERNAME="boss", STAFF_PASSWORD="Given-Secret-Password-123")  # DJANGO_SUPERUSER_*
def test_a_given_staff_password_is_never_printed() -> None:
    for out in (io.StringIO(), _Terminal()):
        get_user_model().objects.filter(username="boss").delete()
        call_command("ensure_staff_account", stdout=out)
        assert "Given-Secret-Password-123" not in out.getvalue() and "boss" in out.getvalue()
    assert get_user_model().objects.get(username="boss").check_password("Given-Secret-Password-123")


@override_settings(STAFF_USERNAME="boss", STAFF_PASSWORD="")
def test_a_generated_password_shows_once_on_a_terminal_and_never_in_logs(tmp_path: Path) -> None:
    log = io.StringIO()
    with override_settings(VAR_DIR=tmp_path):
        call_command("ensure_staff_account", stdout=log)
    saved = tmp_path / "staff-password.txt"
    password = saved.read_text().strip()
    assert len(password) == 20 and password not in log.getvalue() and str(saved) in log.getvalue()
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert get_user_model().objects.get(username="boss").check_password(password)
    get_user_model().objects.filter(username="boss").delete()
    terminal = _Terminal()
    with override_settings(VAR_DIR=tmp_path / "other"):
        call_command("ensure_staff_account", stdout=terminal)
    shown = terminal.getvalue().split(" / ")[1].split()[0]
    assert get_user_model().objects.get(username="boss").check_password(shown)
    assert not (tmp_path / "other" / "staff-password.txt").exists()
    again = _Terminal()
    call_command("ensure_staff_account", stdout=again)
    assert shown not in again.getvalue()  # shown once


@pytest.mark.parametrize("name", ["movielens-5", "MovieLens-12", "MOVIELENS-x"])
def test_imported_users_names_are_reserved_at_sign_up(client: Client, name: str) -> None:
    response = client.post(
        "/signup/", {"username": name, "password1": "Stars-and-Popcorn-77", "password2": "Stars-and-Popcorn-77"}
    )
    assert response.status_code == 200 and "kept for imported MovieLens users" in response.content.decode()
    assert not get_user_model().objects.filter(username=name).exists()


def test_an_old_account_holding_a_reserved_name_stops_the_import_with_a_clear_message(fixtures_dir: Path) -> None:
    squatter = get_user_model().objects.create_user("movielens-1", password="x-long-password-9")
    Profile.objects.create(user=squatter, source=Profile.Source.SITE)
    with pytest.raises(CommandError, match="movielens-1 hold names kept for imported MovieLens users"):
        call_command("import_movielens", str(fixtures_dir / "ml-100k"), "--no-progress", stdout=io.StringIO())
    squatter.refresh_from_db()
    assert squatter.profile.source == Profile.Source.SITE and not Rating.objects.filter(user=squatter).exists()


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


def test_the_popular_fallback_reads_stored_statistics_not_the_ratings_table(
    client: Client, alice, catalogue_movies, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from recommender import serving
    from recommender.models import TrainingRun
    from recommender.vector_store import VectorStore

    TrainingRun.objects.create(status=TrainingRun.Status.SUCCEEDED)
    monkeypatch.setattr(serving, "_store", VectorStore("http://127.0.0.1:9", timeout=1))  # an outage
    serving.forget_live_run()
    client.force_login(alice)
    with CaptureQueriesContext(connection) as queries:
        page = client.get("/for-you/")
    assert page.status_code == 200 and "unavailable" in page.content.decode()
    # One user's own ratings (an index range) are fine; an aggregate across everyone's is the scan to avoid.
    grouped = [
        q["sql"]
        for q in queries
        if "movies_rating" in q["sql"]
        and "user_id" not in q["sql"].split("WHERE")[-1]
        and any(f in q["sql"].upper() for f in ("COUNT(", "AVG(", "SUM(", "GROUP BY"))
    ]
    assert not grouped, grouped
