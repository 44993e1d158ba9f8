"""recommender/runs.py, a training run's lifecycle: retrain requests and their debounce, claiming and training,
the publish gate, publish, make_live and roll_back in whatever order they come, the clean-up of old collections
and model files, and the resends of lost training and publish messages that the beat sweeper runs."""

import itertools
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import override_settings
from django.utils import timezone

from movies.models import Movie
from recommender import outbox, runs, serving, tasks, vectors
from recommender.ml.config import InvalidSetting
from recommender.models import LiveChange, RecommenderState, TrainingRun
from tests.conftest import requires_milvus
from tests.recommender.conftest import TINY_FLAGS, make_ratings, succeeded_run

pytestmark = pytest.mark.django_db


# Publish, make live, roll back and clean up, in whatever order they come, on runs trained for real.


def _reset(store: object, trained: list[TrainingRun]) -> None:
    """Milvus and the runs' records as just after training, the model files untouched."""
    with store._calls("reset") as client:
        client.drop_alias(store.alias)
        for name in store.run_collections():
            client.drop_collection(name)
    store._fields.clear()
    TrainingRun.objects.filter(id__in=[r.id for r in trained]).update(published_at=None, held_back_reason="")
    LiveChange.objects.all().delete()
    serving.forget_live_run()


@requires_milvus
def test_two_publishes_and_a_clean_up_in_every_order_leave_the_newer_run_live_with_its_files(
    store, trained_runs: list[TrainingRun]
) -> None:
    older, newer = trained_runs[0], trained_runs[1]
    steps = {
        "publish older": lambda: runs.publish(older.id),
        "publish newer": lambda: runs.publish(newer.id),
        "clean up": runs.drop_old_collections,
    }
    for order in itertools.permutations(steps):
        _reset(store, trained_runs)
        for step in order:
            steps[step]()
        assert runs.live_run_id() == newer.id, order
        kept = store.run_collections()
        assert store.collection_for_run(newer.id) in kept, order
        assert all(Path(r.artifact_path).is_file() for r in TrainingRun.objects.filter(id__in=[older.id, newer.id]))
        if order.index("publish older") < order.index("publish newer"):
            assert store.collection_for_run(older.id) in kept, f"{order}: the rollback target was dropped"
            moves = [(c.from_run_id, c.to_run_id) for c in LiveChange.objects.order_by("id")]
            assert moves == [(None, older.id), (older.id, newer.id)], order
        else:  # the late publish of the older run changed nothing, and says why on the run
            assert "newer, was published first" in TrainingRun.objects.get(id=older.id).held_back_reason, order
            assert [c.to_run_id for c in LiveChange.objects.all()] == [newer.id], order
        assert serving.live_run().id == newer.id


@requires_milvus
def test_staff_can_put_an_older_run_live_and_it_is_recorded_and_nothing_newer_is_dropped(
    store, trained_runs: list[TrainingRun]
) -> None:
    first, second, third = trained_runs
    operator = get_user_model().objects.create_user("operator", password="x-long-password-9", is_staff=True)
    runs.publish(first.id)
    runs.publish(third.id)
    assert runs.publish(second.id) is None  # late and automatic: the newer run 3 is live
    assert runs.live_run_id() == third.id
    assert f"run {third.id}, newer, was published first" in TrainingRun.objects.get(id=second.id).held_back_reason
    with pytest.raises(runs.Refused, match=f"Run {third.id} is already live; nothing to do."):
        runs.make_live(third.id, operator)
    runs.make_live(second.id, operator)  # staff's explicit choice goes back in time
    assert runs.live_run_id() == second.id
    assert last_move() == ("make_live", third.id, second.id, operator)
    kept = store.run_collections()
    assert [store.run_of_collection(n) for n in kept] == [first.id, second.id, third.id]  # rollback, live, newest
    assert all(Path(r.artifact_path).is_file() for r in TrainingRun.objects.all())
    runs.roll_back(operator)
    assert last_move() == ("roll_back", second.id, first.id, operator)
    runs.drop_old_collections()
    assert store.collection_for_run(third.id) in store.run_collections()


def last_move() -> tuple:
    """The newest move of the alias: (action, from run, to run, by whom)."""
    change = LiveChange.objects.first()
    return change.action, change.from_run_id, change.to_run_id, change.by


@requires_milvus
def test_roll_back_with_nothing_earlier_says_so_and_changes_nothing(store, trained_runs: list[TrainingRun]) -> None:
    with pytest.raises(runs.Refused, match="no earlier run"):
        runs.roll_back()
    runs.publish(trained_runs[0].id)
    with pytest.raises(runs.Refused, match="no earlier run"):
        runs.roll_back()
    assert runs.live_run_id() == trained_runs[0].id and LiveChange.objects.count() == 1


@requires_milvus
def test_a_run_trained_while_another_is_live_scores_the_live_model_on_its_own_split(
    store, trained_runs: list[TrainingRun]
) -> None:
    runs.publish(trained_runs[0].id)
    call_command("train_recommender", *TINY_FLAGS, "--no-baselines", stdout=StringIO())
    candidate = TrainingRun.objects.order_by("-id").first()
    assert candidate.live_on_split["run"] == trained_runs[0].id
    assert set(candidate.live_on_split["validation"]) >= {"hr@10", "ndcg@10"}


@requires_milvus
def test_a_movie_deleted_while_a_publish_runs_is_not_in_the_new_collection(
    store, trained_runs: list[TrainingRun], monkeypatch: pytest.MonkeyPatch
) -> None:
    doomed = Movie.objects.order_by("id").last()
    doomed_id = doomed.id
    computed = runs._current_movie_vectors

    def then_deleted(run: TrainingRun) -> object:  # the snapshot is taken, then staff delete a movie
        movies = computed(run)
        Movie.objects.filter(id=doomed_id).delete()
        vectors.note_movies_deleted([doomed_id])
        return movies

    monkeypatch.setattr(runs, "_current_movie_vectors", then_deleted)
    runs.publish(trained_runs[0].id)
    assert doomed_id not in store.get_vectors([doomed_id])
    assert store.count(store.collection_for_run(trained_runs[0].id)) == Movie.objects.count()


@requires_milvus
def test_a_publish_retried_after_staff_rolled_back_does_not_undo_the_rollback(
    store, trained_runs: list[TrainingRun]
) -> None:
    first, second = trained_runs[0], trained_runs[1]
    runs.publish(first.id)
    runs.publish(second.id)
    runs.roll_back()
    assert runs.publish(second.id) is None  # its message came back (a retry, a redelivery)
    assert runs.live_run_id() == first.id
    assert "published before" in TrainingRun.objects.get(id=second.id).held_back_reason
    assert runs.publish(first.id) == store.collection_for_run(first.id)  # live already: finishes, changes nothing
    assert runs.live_run_id() == first.id and [c.action for c in LiveChange.objects.all()][0] == "roll_back"


# Retrain requests, the publish gate and old model files.


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


# Lost messages, resent by the beat sweeper (recommender.tasks.sweep), and nothing resent forever.


def test_a_lost_publish_is_sent_again_up_to_the_cap(sent: dict, settings: object) -> None:
    settings.PUBLISH_MAX_ATTEMPTS = 3
    succeeded_run(60, published_at=timezone.now())
    lost = succeeded_run(30, publish_attempts=1)  # its publish message never arrived
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
    succeeded_run(30, held_back_reason="worse than the live run")
    tasks.sweep()
    succeeded_run(1)  # just finished: its own message may still be on its way
    tasks.sweep()
    assert sent["publish_embeddings"] == []


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


# The vector lease around rollback and clean-up, a run claimed once, and the pipeline's config checked.


def test_rollback_and_clean_up_wait_while_a_publish_holds_the_lease(db, monkeypatch: pytest.MonkeyPatch) -> None:
    from recommender import runs, serving, vectors
    from recommender.vector_store import VectorStore

    touched = []

    class Recording(VectorStore):
        def live_collection(self) -> str | None:
            return None

        def run_collections(self) -> list[str]:
            return []

        def switch_to(self, collection: str) -> None:
            touched.append("rollback")

        def drop_old_collections(self, keep_runs: set[int]) -> list[str]:
            touched.append("drop")
            return []

    monkeypatch.setattr(serving, "_store", Recording("http://127.0.0.1:9"))
    monkeypatch.setattr(runs, "drop_old_artifacts", lambda: [])
    with vectors.vector_lease("publishing run 2"):
        for change in (runs.roll_back, runs.drop_old_collections):
            with pytest.raises(vectors.VectorsBusy):
                change()
    assert touched == []  # neither touched Milvus while the publish held the lease
    runs.drop_old_collections()
    assert touched == ["drop"]


def test_a_run_already_claimed_is_not_trained_twice() -> None:
    from recommender import runs

    run = TrainingRun.objects.create(status=TrainingRun.Status.RUNNING)
    assert runs.train_model(run.id) is None
    run.refresh_from_db()
    assert run.status == TrainingRun.Status.RUNNING and run.attempts == 0


@pytest.mark.django_db
def test_a_typo_in_the_pipelines_config_is_a_startup_error_and_never_trains_the_default(settings: object) -> None:
    from django.core.checks import run_checks

    from recommender import runs

    settings.RECOMMENDER_TRAINING_CONFIG = {"walk": {"num_layers": 1, "num_neighbours": 10}}
    errors = [m for m in run_checks() if m.id == "recommender.E001"]
    assert errors and "'walk.num_neighbours'" in errors[0].msg
    with pytest.raises(InvalidSetting, match="num_neighbours"):
        runs.request_retrain("test")
    settings.RECOMMENDER_TRAINING_CONFIG = {"walk": {"num_layers": 1}}
    run = runs.create_training_run({"walk": {"num_neighbors": 10}})
    assert run.config == {"walk": {"num_layers": 1, "num_neighbors": 10}}  # merged deeply, both kept


def test_a_run_records_the_epochs_whose_mean_weights_it_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings: object
) -> None:
    """What the admin shows beside the best epoch: the model kept may be the mean of several epochs' weights."""
    from recommender.ml import experiment

    make_ratings(num_users=30, num_movies=25, per_user=8)
    settings.ARTIFACTS_DIR = tmp_path
    real = experiment.fit_pinsage

    def fit(*args: object, **kwargs: object) -> object:
        outcome = real(*args, **kwargs)
        outcome.result.averaged_epochs = [1, 2]  # whichever the tiny run's validation chose, recorded as it is
        return outcome

    monkeypatch.setattr(experiment, "fit_pinsage", fit)
    call_command("train_recommender", *TINY_FLAGS, "--no-baselines", stdout=StringIO())
    run = TrainingRun.objects.order_by("-id").first()
    assert run.status == TrainingRun.Status.SUCCEEDED and run.averaged_epochs == [1, 2]
