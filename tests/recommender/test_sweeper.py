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
    record: dict[str, list] = {"train_model": [], "publish_embeddings": [], "embed_movie": [], "remove_movies": []}

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
    TrainingRun.objects.create(reason="just queued", training_sent_at=timezone.now())  # its message is on its way
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


def test_a_queued_runs_message_is_resent_only_when_lost_and_never_on_every_sweep(sent: dict, settings: object) -> None:
    settings.RETRAIN_RESEND_AFTER_S = 300
    long_ago = timezone.now() - timedelta(minutes=10)
    lost = TrainingRun.objects.create(reason="test", training_sent_at=long_ago, training_sends=1)
    for _ in range(5):
        tasks.sweep()
    assert sent["train_model"] == [lost.id], "sent once, then the next resend waits twice as long"
    TrainingRun.objects.filter(id=lost.id).update(training_sent_at=timezone.now() - timedelta(minutes=9))
    tasks.sweep()
    assert sent["train_model"] == [lost.id], "a second resend waits 2 x 300 s"
    TrainingRun.objects.filter(id=lost.id).update(training_sent_at=timezone.now() - timedelta(minutes=11))
    tasks.sweep()
    assert sent["train_model"] == [lost.id, lost.id]


def test_while_a_run_trains_the_queued_ones_message_waits_behind_it_and_is_not_resent(
    sent: dict, settings: object
) -> None:
    settings.RETRAIN_RESEND_AFTER_S = 300
    TrainingRun.objects.create(status=TrainingRun.Status.RUNNING, started_at=timezone.now())
    TrainingRun.objects.create(reason="test", training_sent_at=timezone.now() - timedelta(hours=2), training_sends=1)
    tasks.sweep()
    assert sent["train_model"] == []


def test_a_run_set_aside_while_another_trained_is_sent_when_that_one_ends(
    sent: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    training = TrainingRun.objects.create(status=TrainingRun.Status.RUNNING, started_at=timezone.now())
    waiting = TrainingRun.objects.create(reason="test", training_sent_at=timezone.now(), training_sends=1)
    assert runs.train_model(waiting.id) is None  # a second worker got its message: it does not start
    waiting.refresh_from_db()
    assert waiting.status == TrainingRun.Status.QUEUED and waiting.training_sent_at is None
    TrainingRun.objects.filter(id=training.id).update(status=TrainingRun.Status.QUEUED)
    monkeypatch.setattr(runs, "_train", lambda run, on_epoch, with_baselines: None)
    runs.run_training(training.id, redelivered=False)
    assert sent["train_model"] == [waiting.id]


def test_a_deleted_movies_removal_is_resent_until_milvus_confirms(
    sent: dict, settings: object, django_capture_on_commit_callbacks: object
) -> None:
    from recommender import vectors
    from recommender.models import MovieRemoval

    settings.RETRAIN_RESEND_AFTER_S = 300
    movie = Movie.objects.create(title="Deleted While Redis Was Down (2026)")
    with django_capture_on_commit_callbacks(execute=False):  # its message was lost with the broker
        movie_id = movie.id
        movie.delete()
        vectors.note_movies_deleted([movie_id])
    tasks.sweep()
    assert sent["remove_movies"] == [], "a fresh removal's own message may still be on its way"
    MovieRemoval.objects.update(deleted_at=timezone.now() - timedelta(minutes=10))
    tasks.sweep()
    tasks.sweep()
    assert sent["remove_movies"] == [[movie_id]]
    MovieRemoval.objects.update(sent_at=timezone.now() - timedelta(minutes=10))  # Milvus never confirmed
    tasks.sweep()
    assert sent["remove_movies"] == [[movie_id], [movie_id]]
