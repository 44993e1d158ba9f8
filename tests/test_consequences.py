"""Each write's consequence for the recommender, through the one news mechanism (movies.events), fast: a rating
marks the data stale, a movie saved in admin gets a vector, a deleted one leaves Milvus, a succeeded run is
published. scripts/mutation-check deletes each consequence's line in turn and expects one of these to fail.
Cross-cutting: each goes from a write in movies/ to what the recommender does about it."""

import pytest
from django.test import Client

from movies import events, services
from movies.models import Movie
from recommender import outbox, runs
from recommender.models import MovieRemoval, RecommenderState, TrainingRun

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[tuple]:
    """What would have gone to the workers, in order."""
    messages: list[tuple] = []
    monkeypatch.setattr(outbox, "send_soon", lambda name, *args, options=None: messages.append((name, *args)))
    monkeypatch.setattr(outbox, "send", lambda name, *args, options=None: messages.append((name, *args)) or True)
    return messages


def test_a_rating_marks_the_data_changed_and_asks_for_a_retrain_check(
    bob, catalogue_movies, sent, django_capture_on_commit_callbacks
) -> None:
    before = RecommenderState.current().num_changes
    with django_capture_on_commit_callbacks(execute=True):
        services.rate_movie(bob, catalogue_movies[0], "4")
    assert RecommenderState.current().num_changes == before + 1 and sent == [(outbox.MAYBE_RETRAIN,)]
    with django_capture_on_commit_callbacks(execute=True):
        services.unrate_movie(bob, catalogue_movies[0])
    assert RecommenderState.current().num_changes == before + 2


def test_a_rating_or_hide_of_a_movie_on_a_shown_list_is_logged_against_it(
    bob, catalogue_movies, sent, django_capture_on_commit_callbacks
) -> None:
    from recommender import impressions
    from recommender.models import Interaction

    shown = impressions.log_impression(bob.id, "page", "popular", [m.id for m in catalogue_movies[:3]])
    with django_capture_on_commit_callbacks(execute=True):
        services.rate_movie(bob, catalogue_movies[0], "4")
        services.hide_movie(bob, catalogue_movies[1])
    impressions.flush()
    logged = set(Interaction.objects.values_list("impression_id", "movie_id", "kind"))
    assert logged == {(shown, catalogue_movies[0].id, "rating"), (shown, catalogue_movies[1].id, "hidden")}


def test_a_movie_saved_in_admin_gets_its_vector_after_commit(
    admin_client: Client, catalogue_movies, sent, django_capture_on_commit_callbacks
) -> None:
    movie = catalogue_movies[0]
    form = {"title": "Robot Garden Redux (1991)", "year": 1991, "genres": [g.id for g in movie.genres.all()]}
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(f"/admin/movies/movie/{movie.id}/change/", form)
    assert response.status_code == 302, response.content.decode()[:500]
    assert (outbox.EMBED_MOVIE, movie.id) in sent


def test_a_movie_deleted_in_admin_is_queued_to_leave_milvus(
    admin_client: Client, catalogue_movies, sent, django_capture_on_commit_callbacks
) -> None:
    doomed = catalogue_movies[3]
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(f"/admin/movies/movie/{doomed.id}/delete/", {"post": "yes"})
    assert not Movie.objects.filter(id=doomed.id).exists()
    assert MovieRemoval.objects.filter(movie_id=doomed.id).exists() and (outbox.REMOVE_MOVIES, [doomed.id]) in sent


def test_a_run_that_succeeds_and_is_no_worse_than_live_is_sent_to_publish(
    sent, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = TrainingRun.objects.create(status=TrainingRun.Status.QUEUED)
    monkeypatch.setattr(
        runs, "train_model", lambda run_id: TrainingRun.objects.filter(id=run_id).update(status="succeeded") and run
    )
    run.status = TrainingRun.Status.SUCCEEDED
    monkeypatch.setattr(runs, "is_worse_than_live", lambda trained: False)
    runs.run_training(run.id, redelivered=False)
    assert (outbox.PUBLISH, run.id) in sent
    sent.clear()
    monkeypatch.setattr(runs, "is_worse_than_live", lambda trained: True)
    runs.run_training(run.id, redelivered=False)
    assert (outbox.PUBLISH, run.id) not in sent


def test_news_nobody_receives_is_an_error_not_a_silent_loss(monkeypatch: pytest.MonkeyPatch) -> None:
    from django.dispatch import Signal

    assert all(e.has_listeners() for e in (events.ratings_changed, events.movie_saved, events.movies_deleted))
    with pytest.raises(events.LostConsequence, match="no receiver"):
        events.send(Signal(), num_changes=1)
