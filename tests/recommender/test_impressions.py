"""recommender/impressions.py: lists shown and what people did with them, written off the request path, matched
to the list that showed the movie, bounded, rolled up and pruned."""

import time
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from django.utils.html import escape

from movies import services
from movies.models import Movie
from recommender import impressions
from recommender.models import Experiment, Impression, ImpressionDay, Interaction, TrainingRun
from tests.conftest import requires_milvus

pytestmark = pytest.mark.django_db


def _logged_in(user: object) -> Client:
    client = Client()
    client.force_login(user)
    return client


@requires_milvus
def test_a_page_of_picks_is_logged_once_with_its_run_and_order_and_clicks_on_it_count(
    alice, live_embeddings, catalogue_movies
) -> None:
    client = _logged_in(alice)
    page = client.get("/for-you/")
    assert not Impression.objects.exists()  # queued, not written by the request
    impressions.flush()
    shown = Impression.objects.get()
    assert (shown.user_id, shown.surface, shown.source, shown.run_id) == (
        alice.id,
        "page",
        "personal",
        live_embeddings.id,
    )
    titles = [escape(Movie.objects.get(id=i).display_title) for i in shown.movies]
    html = page.content.decode()
    assert all(t in html for t in titles) and sorted(titles, key=html.index) == titles  # as shown, in order
    assert f"?from={shown.id}" in page.content.decode()  # its links carry the impression

    pick = shown.movies[2]
    client.get(f"/movies/{pick}/?from={shown.id}")
    client.get(f"/movies/{pick}/?from={shown.id}")  # the same click again is the same interaction
    client.get(f"/movies/{pick}/?from=not-a-number")
    impressions.flush()
    click = Interaction.objects.get(kind=Interaction.Kind.CLICK)
    assert (click.impression_id, click.movie_id, click.user_id) == (shown.id, pick, alice.id)
    similar = Impression.objects.filter(source="similar")  # the movie page's own list, logged against that movie
    assert similar.count() == 3 and {s.context_movie_id for s in similar} == {pick}


@requires_milvus
def test_a_rating_or_hide_of_a_shown_movie_within_the_window_credits_that_list_and_nothing_else_does(
    alice, live_embeddings, catalogue_movies, settings, django_capture_on_commit_callbacks
) -> None:
    _logged_in(alice).get("/for-you/")
    impressions.flush()
    shown = Impression.objects.get()
    rated, hidden = Movie.objects.get(id=shown.movies[0]), Movie.objects.get(id=shown.movies[1])
    not_shown = Movie.objects.create(title="Added Since (2024)", year=2024)  # on no list she was shown
    with django_capture_on_commit_callbacks(execute=True):  # actions are logged once their transaction commits
        services.rate_movie(alice, rated, "4.5")
        services.hide_movie(alice, hidden)
        services.rate_movie(alice, not_shown, "3")
    impressions.flush()
    found = {(i.kind, i.movie_id, i.impression_id) for i in Interaction.objects.all()}
    assert found == {("rating", rated.id, shown.id), ("hidden", hidden.id, shown.id)}
    assert impressions.counters().unmatched == 1

    Impression.objects.update(shown_at=timezone.now() - timedelta(minutes=settings.INTERACTION_WINDOW_MINUTES + 1))
    with django_capture_on_commit_callbacks(execute=True):
        services.rate_movie(alice, rated, "2")  # long after the list: not its doing
    impressions.flush()
    assert Interaction.objects.filter(kind="rating").count() == 1


def test_a_rating_rolled_back_is_never_logged(alice, catalogue_movies) -> None:
    from django.db import transaction

    impressions.log_impression(alice.id, "page", "popular", [catalogue_movies[5].id])
    with pytest.raises(RuntimeError), transaction.atomic():
        services.rate_movie(alice, catalogue_movies[5], "5")
        raise RuntimeError("the request failed after the rating")
    impressions.flush()
    assert not Interaction.objects.exists()


def test_a_full_queue_drops_and_counts_and_never_waits(alice, catalogue_movies, settings) -> None:
    settings.IMPRESSION_QUEUE_SIZE = 3
    impressions._log = None
    started = time.perf_counter()
    ids = [impressions.log_impression(alice.id, "api", "popular", [catalogue_movies[0].id]) for _ in range(5)]
    assert time.perf_counter() - started < 0.1
    assert [i is not None for i in ids] == [True, True, True, False, False]
    assert impressions.counters().dropped == 2
    impressions.flush()
    assert Impression.objects.count() == 3


def test_a_batch_the_database_refuses_is_counted_and_dropped_and_the_next_one_is_written(
    alice, catalogue_movies, monkeypatch
) -> None:
    impressions.log_impression(alice.id, "page", "popular", [catalogue_movies[0].id])

    def refuse(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the database went away")

    with monkeypatch.context() as patched:
        patched.setattr(Impression.objects, "bulk_create", refuse)
        impressions.flush()
    assert impressions.counters().failed == 1
    impressions.log_impression(alice.id, "page", "popular", [catalogue_movies[1].id])
    impressions.flush()
    assert Impression.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_with_production_settings_a_thread_writes_the_log_in_batches_after_the_page_has_answered(
    alice, co_raters, settings
) -> None:
    settings.IMPRESSION_FLUSH_MS = 1000
    impressions._log = None
    client = _logged_in(alice)
    assert client.get("/for-you/").status_code == 200  # co-rated picks: no model is live
    assert client.get("/for-you/").status_code == 200
    assert not Impression.objects.exists()  # the requests answered before anything was written
    deadline = time.monotonic() + 10
    while Impression.objects.count() < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert impressions.counters().failed == 0, impressions.counters()
    assert Impression.objects.count() == 2, impressions.counters()
    assert impressions.counters().written == 2


def test_old_rows_are_pruned_with_their_daily_counts_kept_but_a_running_experiments_stay(
    alice, catalogue_movies, settings
) -> None:
    run = TrainingRun.objects.create(status=TrainingRun.Status.SUCCEEDED)
    running = Experiment.objects.create(live_run=run, challenger_run=run, salt="s", status=Experiment.Status.RUNNING)
    for n, experiment_id in enumerate([None, None, running.id, None]):
        impressions.log_impression(
            alice.id, "page", "personal", [catalogue_movies[n].id], run_id=run.id, experiment_id=experiment_id
        )
    impressions.flush()
    old = timezone.now() - timedelta(days=settings.IMPRESSION_RETENTION_DAYS + 2)
    Impression.objects.exclude(movies=[catalogue_movies[3].id]).update(shown_at=old)
    first = Impression.objects.get(movies=[catalogue_movies[0].id])
    Interaction.objects.create(impression=first, user=alice, movie_id=first.movies[0], kind="click", at=old)

    assert impressions.prune(chunk=1) == (2, 1)
    assert impressions.prune() == (0, 0)  # again: nothing more, nothing counted twice
    assert Impression.objects.count() == 2  # the running experiment's old row, and today's
    day = ImpressionDay.objects.get()
    assert (day.day, day.impressions, day.clicks, day.run_id) == (old.date(), 2, 1, run.id)

    Experiment.objects.update(status=Experiment.Status.STOPPED)
    assert impressions.prune() == (1, 0)
    assert ImpressionDay.objects.get().impressions == 3


def test_log_rows_name_nobody_beyond_the_user_id() -> None:
    for model in (Impression, Interaction, ImpressionDay):
        names = {f.name for f in model._meta.get_fields()}
        assert not names & {"ip", "ip_address", "user_agent", "username", "email", "session", "referer"}


def test_deleting_an_account_deletes_its_log_rows(alice, bob, catalogue_movies) -> None:
    for person in (alice, bob):
        impression_id = impressions.log_impression(person.id, "page", "popular", [catalogue_movies[0].id])
        impressions.note_click(person.id, impression_id, catalogue_movies[0].id)
    impressions.flush()
    alice.delete()
    assert list(Impression.objects.values_list("user_id", flat=True)) == [bob.id]
    assert list(Interaction.objects.values_list("user_id", flat=True)) == [bob.id]


def test_the_home_pages_popular_list_is_logged_and_its_links_carry_it(client, alice, catalogue_movies) -> None:
    client.force_login(alice)
    page = client.get("/").content.decode()
    impressions.flush()
    shown = Impression.objects.get()
    assert (shown.source, shown.user_id) == ("popular", alice.id) and shown.movies
    assert f"/movies/{shown.movies[0]}/?from={shown.id}" in page
