"""Rate limits on ratings and sign-ups: 429 with Retry-After and a message, counted in the database."""

import json
import re
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import OperationalError, connection
from django.test import Client

from movies.models import RateCounter, Rating
from tests.conftest import requires_mysql
from web import ratelimits

pytestmark = pytest.mark.django_db

PASSWORD = "Stars-and-Popcorn-77"


def _at(monkeypatch: pytest.MonkeyPatch, moment: datetime) -> None:
    monkeypatch.setattr(ratelimits.timezone, "now", lambda: moment)


def _sign_up(client: Client, username: str, password2: str = PASSWORD, **meta: str) -> object:
    return client.post("/signup/", {"username": username, "password1": PASSWORD, "password2": password2}, **meta)


def test_ratings_over_the_per_user_limit_get_429_retry_after_and_a_message(
    client: Client, bob, catalogue_movies, settings, monkeypatch
) -> None:
    settings.RATING_LIMIT_PER_USER, settings.RATING_LIMIT_WINDOW_S = 2, 60
    _at(monkeypatch, datetime(2026, 1, 1, 12, 0, 15, tzinfo=UTC))
    client.force_login(bob)
    movie = catalogue_movies[0]
    assert client.post(f"/movies/{movie.id}/rate/", {"stars": "4"}).status_code == 302
    assert client.post(f"/api/ratings/{movie.id}/", {"stars": "4.5"}).status_code == 200
    widget = client.post(f"/movies/{movie.id}/rate/", {"stars": "1"}, HTTP_HX_REQUEST="true")
    assert widget.status_code == 429 and widget["Retry-After"] == "45" and "HX-Trigger" not in widget
    body = widget.content.decode()
    assert "Too many ratings in a short time, so this one was not saved. Try again in 45 seconds." in body
    assert re.search(r'value="4.5"\s+checked', body)  # the widget shows the rating that is saved
    page = client.post(f"/movies/{movie.id}/rate/", {"stars": "1"})
    assert (
        page.status_code == 429 and page["Retry-After"] == "45" and "Try again in 45 seconds" in page.content.decode()
    )
    api = client.post(f"/api/ratings/{movie.id}/", json.dumps({"stars": 1}), content_type="application/json")
    assert api.status_code == 429 and api["Retry-After"] == "45" and api.json()["retry_after_s"] == 45
    assert "too many ratings" in api.json()["error"]
    assert client.delete(f"/api/ratings/{movie.id}/").status_code == 429
    assert Rating.objects.get(user=bob, movie=movie).stars == 4.5


def test_the_per_user_limit_opens_again_in_the_next_window(
    client: Client, bob, catalogue_movies, settings, monkeypatch
) -> None:
    settings.RATING_LIMIT_PER_USER = 1
    start = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    _at(monkeypatch, start)
    client.force_login(bob)
    url = f"/api/ratings/{catalogue_movies[0].id}/"
    assert [client.post(url, {"stars": s}).status_code for s in ("1", "2")] == [200, 429]
    _at(monkeypatch, start + timedelta(seconds=settings.RATING_LIMIT_WINDOW_S))
    assert client.post(url, {"stars": "3"}).status_code == 200


def test_the_per_address_limit_counts_everyone_behind_one_proxied_address(
    client: Client, alice, bob, catalogue_movies, settings
) -> None:
    settings.TRUSTED_PROXIES, settings.RATING_LIMIT_PER_ADDRESS = ["10.0.0.0/24"], 3
    proxy = {"REMOTE_ADDR": "10.0.0.2"}
    codes = []
    for user, address in [(alice, "198.51.100.7"), (bob, "198.51.100.7"), (alice, "198.51.100.7")] * 2:
        client.force_login(user)
        url = f"/api/ratings/{catalogue_movies[5].id}/"
        codes.append(client.post(url, {"stars": "3"}, HTTP_X_FORWARDED_FOR=address, **proxy).status_code)
    assert codes == [200, 200, 200, 429, 429, 429]
    other = client.post(url, {"stars": "2"}, HTTP_X_FORWARDED_FOR="203.0.113.5", **proxy)
    assert other.status_code == 200


def test_a_zero_limit_is_no_limit(client: Client, bob, catalogue_movies, settings) -> None:
    settings.RATING_LIMIT_PER_USER = settings.RATING_LIMIT_PER_ADDRESS = 0
    client.force_login(bob)
    url = f"/api/ratings/{catalogue_movies[0].id}/"
    assert {client.post(url, {"stars": str(1 + k % 4)}).status_code for k in range(5)} == {200}
    assert not RateCounter.objects.exists()


def test_signups_over_the_per_address_limit_get_429_and_a_message(client: Client, db, settings, monkeypatch) -> None:
    settings.SIGNUP_LIMIT_PER_ADDRESS, settings.SIGNUP_LIMIT_WINDOW_S = 2, 3600
    _at(monkeypatch, datetime(2026, 1, 1, 12, 10, 0, tzinfo=UTC))
    for name in ("carol", "dave"):
        assert _sign_up(Client(), name).status_code == 302
    refused = _sign_up(client, "erin")
    assert refused.status_code == 429 and refused["Retry-After"] == "3000"
    page = refused.content.decode()
    assert "Too many accounts were made from your network just now. Please try again in 50 minutes." in page
    assert 'value="erin"' in page  # the name is kept for the next try
    assert not get_user_model().objects.filter(username="erin").exists()
    assert _sign_up(client, "erin", REMOTE_ADDR="203.0.113.5").status_code == 302


def test_a_sign_up_form_with_errors_costs_no_place(client: Client, db, settings) -> None:
    settings.SIGNUP_LIMIT_PER_ADDRESS = 1
    for _ in range(3):
        assert _sign_up(client, "carol", password2="something-else").status_code == 200
    assert _sign_up(client, "carol").status_code == 302
    assert _sign_up(Client(), "dave").status_code == 429


def test_a_broken_counter_lets_the_rating_through(client: Client, bob, catalogue_movies, settings, monkeypatch) -> None:
    settings.RATING_LIMIT_PER_USER = 1

    def unreachable(*args: object, **kwargs: object) -> None:
        raise OperationalError("the counters table is locked")

    monkeypatch.setattr(RateCounter.objects, "filter", unreachable)
    client.force_login(bob)
    for stars in ("2", "3", "4"):
        response = client.post(f"/movies/{catalogue_movies[1].id}/rate/", {"stars": stars}, HTTP_HX_REQUEST="true")
        assert response.status_code == 200 and f"Saved: {stars} stars." in response.content.decode()
    assert Rating.objects.get(user=bob).stars == 4


def test_a_window_another_process_opened_between_our_update_and_insert_is_counted(db) -> None:
    limit = ratelimits.Limit("rating:user:1", 5, 60)
    start = ratelimits._window_start(ratelimits.timezone.now(), limit.window_s)
    RateCounter.objects.create(
        key=limit.key, window_start=start, expires_at=start + timedelta(minutes=1), num_requests=3
    )
    missed = []

    def miss_the_first_update(execute: Callable, sql: str, params: list, many: bool, context: dict) -> object:
        if sql.startswith("UPDATE") and "ratecounter" in sql and not missed:
            missed.append(sql)  # it runs before the other process's insert, so it matches no row
            params = ["not there yet" if param == limit.key else param for param in params]
        return execute(sql, params, many, context)

    with connection.execute_wrapper(miss_the_first_update):
        assert ratelimits.count_request([limit]) is None
    assert missed and RateCounter.objects.get(key=limit.key).num_requests == 4


def test_ended_windows_are_pruned_when_a_window_opens(db, monkeypatch) -> None:
    start = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    minute, hour = ratelimits.Limit("rating:user:1", 5, 60), ratelimits.Limit("signup:address:192.0.2.1", 5, 3600)
    _at(monkeypatch, start)
    ratelimits.count_request([minute, hour])
    _at(monkeypatch, start + timedelta(seconds=61))
    ratelimits.count_request([minute])
    windows = sorted((c.key, c.window_start.minute) for c in RateCounter.objects.all())
    assert windows == [("rating:user:1", 1), ("signup:address:192.0.2.1", 0)]


@requires_mysql
@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_never_share_the_last_place(monkeypatch: pytest.MonkeyPatch) -> None:
    """Separate connections, as separate gunicorn workers have: the count is exact and the limit holds."""
    _at(monkeypatch, datetime(2026, 1, 1, 12, 30, 0, tzinfo=UTC))
    limit = ratelimits.Limit("rating:address:192.0.2.9", 25, 3600)
    barrier, refusals, errors = threading.Barrier(4), [], []

    def hammer() -> None:
        try:
            barrier.wait()
            refusals.extend(ratelimits.count_request([limit]) for _ in range(10))
        except Exception as error:  # collected and asserted below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert RateCounter.objects.get(key=limit.key).num_requests == 40
    assert sum(refusal is None for refusal in refusals) == 25
