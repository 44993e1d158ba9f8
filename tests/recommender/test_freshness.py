"""New movies without retraining, the publish gate, and the debounce of retrain requests."""

from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings
from django.utils import timezone

from movies.models import Genre, Movie
from recommender import runs, serving, vectors
from recommender.models import RecommenderState, TrainingRun
from tests.conftest import requires_milvus
from tests.recommender.test_train_command import TINY_FLAGS, make_ratings

pytestmark = pytest.mark.django_db


@pytest.fixture
def trained(store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings: object) -> object:
    """A tiny run trained on 30 users x 25 movies, not yet published; pages read the test's own store."""
    make_ratings(num_users=30, num_movies=25, per_user=8)
    monkeypatch.setattr(serving, "_store", store)
    serving.forget_live_run()
    settings.ARTIFACTS_DIR = tmp_path
    call_command("train_recommender", *TINY_FLAGS, "--no-baselines", stdout=StringIO())
    yield TrainingRun.objects.order_by("-id").first()
    serving.forget_live_run()


@requires_milvus
def test_a_new_movie_becomes_searchable_without_retraining(store, trained) -> None:
    runs.publish(trained.id)
    movie = Movie.objects.create(title="Brand New Film (2026)", year=2026)
    movie.genres.add(Genre.objects.create(name="Sci-Fi"))
    assert vectors.embed_movie(movie.id)
    assert movie.id in store.get_vectors([movie.id])
    near, _ = store.get_neighbors([movie.id])[movie.id]
    assert len(near) == 25 and movie.id not in near.tolist()  # its own list, from one search
    similar = serving.similar_movies(movie, limit=5)
    assert len(similar.items) == 5 and movie.id not in [i.movie.id for i in similar.items]
    hits = store.search(store.get_vectors([movie.id])[movie.id][None, :], 1, "year >= 2026")[0]
    assert hits[0].movie_id == movie.id
    serving.forget_live_run()


def test_retrain_requests_are_debounced(db) -> None:
    first = runs.request_retrain("admin")
    assert first is not None and first.status == TrainingRun.Status.QUEUED
    assert runs.request_retrain("admin") is None
    assert TrainingRun.objects.active().count() == 1


def test_enough_changes_trigger_one_retrain(db, settings: object) -> None:
    settings.RETRAIN_MIN_CHANGES = 3
    runs.note_data_changed(2)
    assert runs.maybe_retrain() is None
    runs.note_data_changed(1)
    assert runs.maybe_retrain() is not None
    assert RecommenderState.current().num_changes == 0
    assert runs.maybe_retrain() is None


def test_a_worse_run_is_held_back(db, monkeypatch: pytest.MonkeyPatch, settings: object) -> None:
    settings.PUBLISH_TOLERANCE = 0.01
    live = TrainingRun.objects.create(status=TrainingRun.Status.SUCCEEDED, validation_metrics={"hr@10": 0.20})
    worse = TrainingRun.objects.create(status=TrainingRun.Status.SUCCEEDED, validation_metrics={"hr@10": 0.15})
    close = TrainingRun.objects.create(status=TrainingRun.Status.SUCCEEDED, validation_metrics={"hr@10": 0.195})
    monkeypatch.setattr(serving, "live_run", lambda: live)
    assert runs.is_worse_than_live(worse)
    assert not runs.is_worse_than_live(close)
    worse.refresh_from_db()
    assert "below the live run" in worse.held_back_reason


def test_the_beat_schedule_sweeps_retrains_nightly_and_collects_garbage(settings: object) -> None:
    from celery.schedules import crontab

    from recsite.celery import app

    app.loader.import_default_modules()
    schedule = settings.CELERY_BEAT_SCHEDULE
    # Each entry names a task the workers really have (a rename would leave beat sending into the void).
    assert all(entry["task"] in app.tasks for entry in schedule.values()), sorted(e["task"] for e in schedule.values())
    by_task = {entry["task"]: entry["schedule"] for entry in schedule.values()}
    assert 0 < float(by_task["recommender.tasks.sweep"]) <= 600
    assert isinstance(by_task["recommender.tasks.nightly_retrain"], crontab)
    assert isinstance(by_task["recommender.tasks.drop_old_collections"], crontab)


def test_a_run_left_running_past_the_hard_limit_is_failed_by_the_sweeper(db, settings: object) -> None:
    from datetime import timedelta

    from django.utils import timezone

    settings.TRAINING_TIME_LIMIT_S = 600
    now = timezone.now()
    lost = TrainingRun.objects.create(status=TrainingRun.Status.RUNNING, started_at=now - timedelta(seconds=1000))
    busy = TrainingRun.objects.create(status=TrainingRun.Status.RUNNING, started_at=now - timedelta(seconds=500))
    assert runs.fail_overdue_runs() == 1
    lost.refresh_from_db()
    busy.refresh_from_db()
    assert lost.status == TrainingRun.Status.FAILED and "hard time limit of 600 s" in lost.failure_reason
    assert busy.status == TrainingRun.Status.RUNNING
    assert runs.fail_overdue_runs() == 0


@requires_milvus
def test_publishing_covers_the_movies_of_now_and_deletions_break_nothing(store, trained) -> None:
    run = trained
    gone = Movie.objects.order_by("id").first()
    gone_id = gone.id
    gone.delete()  # trained on, then deleted before publishing
    added = Movie.objects.create(title="Added After Training (2026)", year=2026)
    runs.publish(run.id)
    held = store.get_vectors([gone_id, added.id])
    assert added.id in held and gone_id not in held
    assert store.count(store.collection_for_run(run.id)) == Movie.objects.count()
    vectors._network_cache.clear()  # as a fresh worker process would load it
    later = Movie.objects.create(title="Later Still (2027)", year=2027)
    assert vectors.embed_movie(later.id), "a deletion must not break new movies' vectors"
    added_id = added.id
    added.delete()
    vectors.remove_movies([added_id])
    assert added_id not in store.get_vectors([added_id, later.id]) and later.id in store.get_vectors([later.id])
    serving.forget_live_run()


def test_old_model_files_are_removed_with_their_collections(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from recommender.vector_store import VectorStore

    class Collections(VectorStore):  # the collections Milvus holds: the live run 5 and its rollback 4
        def run_collections(self) -> list[str]:
            return [self.collection_for_run(4), self.collection_for_run(5)]

        def live_collection(self) -> str | None:
            return self.collection_for_run(5)

    monkeypatch.setattr(serving, "_store", Collections("http://127.0.0.1:9"))
    for run_id, status, published in [
        (1, "succeeded", True),
        (2, "failed", False),
        (3, "succeeded", True),
        (4, "succeeded", True),
        (5, "succeeded", True),
        (6, "succeeded", False),
        (7, "running", False),
    ]:
        path = tmp_path / f"run-{run_id}.pt"
        path.write_bytes(b"weights")
        TrainingRun.objects.create(
            id=run_id, status=status, artifact_path=str(path), published_at=timezone.now() if published else None
        )
    assert sorted(runs.drop_old_artifacts()) == [1, 2, 3]
    assert sorted(int(p.stem.split("-")[1]) for p in tmp_path.glob("run-*.pt")) == [4, 5, 6, 7]
    assert TrainingRun.objects.get(id=1).artifact_path == ""
    with pytest.raises(ValueError, match="model file is gone"):
        runs.publish(1)  # what admin's "Make live" shows, instead of a 500


@requires_milvus
def test_after_a_rollback_the_gate_compares_with_the_run_really_live(
    store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from recommender.models import RecommenderState
    from recommender.vector_store import VectorStore

    make_ratings(num_users=30, num_movies=25, per_user=8)
    monkeypatch.setattr(serving, "_store", store)
    with override_settings(ARTIFACTS_DIR=tmp_path):
        for _ in range(2):
            call_command("train_recommender", *TINY_FLAGS, "--no-baselines", stdout=StringIO())
        first, second = TrainingRun.objects.order_by("id")
        runs.publish(first.id)
        runs.publish(second.id)
        assert RecommenderState.current().live_run_id == second.id
        runs.roll_back()
    assert RecommenderState.current().live_run_id == first.id
    serving.forget_live_run()
    assert serving.live_run().id == first.id
    TrainingRun.objects.filter(id=first.id).update(validation_metrics={"hr@10": 0.30})
    TrainingRun.objects.filter(id=second.id).update(validation_metrics={"hr@10": 0.01})
    candidate = TrainingRun.objects.create(status=TrainingRun.Status.SUCCEEDED, validation_metrics={"hr@10": 0.10})
    monkeypatch.setattr(serving, "_store", VectorStore("http://127.0.0.1:9", timeout=1))  # Milvus down now
    serving.forget_live_run()
    # The last published run (second, 0.01) would wave it through; the run really live (first, 0.30) does not.
    assert runs.is_worse_than_live(candidate)
    serving.forget_live_run()


@requires_milvus
def test_the_publish_command_makes_the_latest_run_live_once(store, trained) -> None:
    out = StringIO()
    call_command("publish_embeddings", stdout=out)
    assert f"Run {trained.id} is live as " in out.getvalue()
    assert serving.live_run().id == trained.id
    again = StringIO()
    call_command("publish_embeddings", "--if-needed", stdout=again)
    assert again.getvalue().strip() == f"Run {trained.id} is already live."
    with pytest.raises(CommandError, match="no succeeded training run"):
        call_command("publish_embeddings", str(trained.id + 100), stdout=StringIO())


def test_the_gate_compares_with_the_live_model_scored_on_the_candidates_own_split(
    db, monkeypatch: pytest.MonkeyPatch, settings: object
) -> None:
    settings.PUBLISH_TOLERANCE = 0.01
    live = TrainingRun.objects.create(status=TrainingRun.Status.SUCCEEDED, validation_metrics={"hr@10": 0.30})
    monkeypatch.setattr(serving, "live_run", lambda: live)
    # Its own snapshot made the live run look strong; on this run's split the live model scores 0.18.
    better = TrainingRun.objects.create(
        status=TrainingRun.Status.SUCCEEDED,
        validation_metrics={"hr@10": 0.20},
        live_on_split={"run": live.id, "validation": {"hr@10": 0.18}},
    )
    assert not runs.is_worse_than_live(better)
    worse = TrainingRun.objects.create(
        status=TrainingRun.Status.SUCCEEDED,
        validation_metrics={"hr@10": 0.20},
        live_on_split={"run": live.id, "validation": {"hr@10": 0.25}},
    )
    assert runs.is_worse_than_live(worse)
    worse.refresh_from_db()
    assert "on this run's validation" in worse.held_back_reason
    other = TrainingRun.objects.create(status=TrainingRun.Status.SUCCEEDED)
    stale = TrainingRun.objects.create(  # scored against a run that is no longer live: its own figures decide
        status=TrainingRun.Status.SUCCEEDED,
        validation_metrics={"hr@10": 0.20},
        live_on_split={"run": other.id, "validation": {"hr@10": 0.10}},
    )
    assert runs.is_worse_than_live(stale)
