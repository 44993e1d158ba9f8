"""Work whose message was lost is finished by the beat sweeper; nothing is redelivered forever."""

from datetime import timedelta

import pytest
from django.utils import timezone

from movies.models import Movie
from recommender import outbox, runs, serving, tasks
from recommender.models import RecommenderState, TrainingRun

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> dict[str, list]:
    """Every message the sweeper sends, by task, instead of the broker."""
    record: dict[str, list] = {"train_model": [], "publish_embeddings": [], "embed_movie": []}

    def send(name: str, *args: object, options: dict | None = None) -> bool:
        record[name.rpartition(".")[2]].append(args[0])
        return True

    monkeypatch.setattr(outbox, "send", send)
    return record


def _succeeded(minutes_ago: int, **fields: object) -> TrainingRun:
    return TrainingRun.objects.create(
        status=TrainingRun.Status.SUCCEEDED,
        artifact_path="x",
        finished_at=timezone.now() - timedelta(minutes=minutes_ago),
        **fields,
    )


def test_a_lost_publish_is_sent_again_up_to_the_cap(sent: dict, settings: object) -> None:
    settings.PUBLISH_MAX_ATTEMPTS = 3
    _succeeded(60, published_at=timezone.now())
    lost = _succeeded(30, publish_attempts=1)  # its publish message never arrived
    tasks.sweep()
    assert sent["publish_embeddings"] == [lost.id]
    tasks.sweep()
    tasks.sweep()
    tasks.sweep()
    assert sent["publish_embeddings"] == [lost.id, lost.id]  # 3 attempts in all, then staff decide
    assert TrainingRun.objects.get(id=lost.id).publish_attempts == 3


def test_a_queued_run_whose_message_was_lost_is_sent_again(sent: dict, settings: object) -> None:
    settings.RETRAIN_RESEND_AFTER_S = 300
    lost = TrainingRun.objects.create(reason="test")  # queued while the broker was down: no message anywhere
    TrainingRun.objects.filter(id=lost.id).update(created_at=timezone.now() - timedelta(minutes=10))
    TrainingRun.objects.create(reason="just queued")  # its message may still be on its way
    tasks.sweep()
    assert sent["train_model"] == [lost.id]
    TrainingRun.objects.filter(id=lost.id).update(status=TrainingRun.Status.RUNNING, started_at=timezone.now())
    tasks.sweep()
    assert sent["train_model"] == [lost.id], "a claimed run is not sent again"


def test_what_should_not_go_live_is_never_resent(sent: dict) -> None:
    _succeeded(30, held_back_reason="worse than the live run")
    tasks.sweep()
    _succeeded(1)  # just finished: its own message may still be on its way
    tasks.sweep()
    assert sent["publish_embeddings"] == []


def test_movie_vectors_lost_while_the_broker_was_down_are_resent_once(
    sent: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    live = _succeeded(30, published_at=timezone.now() - timedelta(minutes=20))
    monkeypatch.setattr(serving, "live_run", lambda: live)
    before = Movie.objects.create(title="Published With The Run (2001)")
    Movie.objects.filter(id=before.id).update(updated_at=timezone.now() - timedelta(minutes=25))
    added = Movie.objects.create(title="Added While Redis Was Down (2026)")  # its embed_movie message was lost
    tasks.sweep()
    assert sent["embed_movie"] == [added.id]
    tasks.sweep()
    assert sent["embed_movie"] == [added.id], "a later sweep starts where the last one ended"
    edited = Movie.objects.get(id=before.id)
    edited.title = "Published With The Run, Renamed (2001)"
    edited.save()
    tasks.sweep()
    assert sent["embed_movie"] == [added.id, before.id]
    assert RecommenderState.current().vectors_synced_at is not None


def test_only_training_is_redelivered_when_its_worker_dies(settings: object) -> None:
    from recsite.celery import app

    assert settings.CELERY_TASK_REJECT_ON_WORKER_LOST is False
    app.loader.import_default_modules()
    assert app.tasks["recommender.tasks.train_model"].reject_on_worker_lost is True
    for name in ("publish_embeddings", "embed_movie", "remove_movies", "sweep"):
        task = app.tasks[f"recommender.tasks.{name}"]
        assert not (task.reject_on_worker_lost or app.conf.task_reject_on_worker_lost), name


def test_a_rolled_back_transaction_sends_no_task(
    django_capture_on_commit_callbacks: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.db import transaction

    sent = []
    monkeypatch.setattr(outbox, "send_soon", lambda name, *args, **kwargs: sent.append(name))
    monkeypatch.setattr(outbox, "send", lambda *args, **kwargs: sent.append("direct"))
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        try:
            with transaction.atomic():
                runs.note_data_changed()
                raise RuntimeError("roll back")
        except RuntimeError:
            pass
    assert callbacks == [] and sent == []  # nothing queued for after commit, and nothing sent at once either
    with django_capture_on_commit_callbacks(execute=True) as callbacks, transaction.atomic():
        runs.note_data_changed()
    assert len(callbacks) == 1 and sent == ["recommender.tasks.maybe_retrain"]  # the same call, committed, sends
