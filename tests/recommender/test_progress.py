"""A training run's progress and the estimate of when its picks will be live."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from recommender.models import TrainingRun
from recommender.progress import training_progress
from tests.conftest import requires_milvus

pytestmark = pytest.mark.django_db


def _epochs(*hrs: float) -> list[dict]:
    return [{"epoch": i + 1, "loss": 1.0, "seconds": 90.0, "validation": {"hr@10": hr}} for i, hr in enumerate(hrs)]


def _running(history: list[dict], seconds_ago: float) -> TrainingRun:
    return TrainingRun.objects.create(
        status=TrainingRun.Status.RUNNING,
        config={"epochs": 30, "patience": 4},
        history=history,
        started_at=timezone.now() - timedelta(seconds=seconds_ago),
    )


def test_the_estimate_is_patience_past_the_best_epoch_at_the_pace_so_far() -> None:
    run = _running(_epochs(0.10, 0.15, 0.14), seconds_ago=300)  # 100 s an epoch, best at 2
    progress = training_progress(run)
    # Stops at epoch 6 at the earliest: 3 more epochs, then a publish (60 s before any has been timed).
    assert progress.seconds_left == pytest.approx(3 * 100 + 60, abs=2)
    assert str(progress) == (
        f"run {run.id} training: epoch 3 of at most 30, best validation HR@10 0.1500 at epoch 2; "
        "live in about 6 min (estimate)"
    )


def test_a_previous_run_that_peaked_later_moves_the_estimate_and_its_publish_time_counts() -> None:
    finished = timezone.now() - timedelta(days=1)
    TrainingRun.objects.create(
        status=TrainingRun.Status.SUCCEEDED,
        best_epoch=10,
        finished_at=finished,
        published_at=finished + timedelta(seconds=30),
    )
    run = _running(_epochs(0.10, 0.15, 0.14), seconds_ago=300)
    assert training_progress(run).seconds_left == pytest.approx((14 - 3) * 100 + 30, abs=2)


def test_with_epoch_end_times_the_estimate_counts_down_between_epochs() -> None:
    now = timezone.now().timestamp()
    history = _epochs(0.10, 0.15, 0.14)
    for row, ended in zip(history, (now - 250, now - 150, now - 50)):  # the first took 150 s with the data's setup
        row["ended_at"] = ended
    run = _running(history, seconds_ago=400)
    # 100 s an epoch between epochs, 3 more to go, 50 s of the next already spent, then a 60-s publish.
    assert training_progress(run).seconds_left == pytest.approx(3 * 100 - 50 + 60, abs=2)


def test_queued_and_preparing_runs_say_so_without_a_number() -> None:
    queued = TrainingRun.objects.create(status=TrainingRun.Status.QUEUED, config={"epochs": 30})
    preparing = _running([], seconds_ago=20)
    assert str(training_progress(queued)) == f"run {queued.id} is queued for training"
    assert "a first estimate comes after epoch 1" in str(training_progress(preparing))
    assert training_progress(preparing).seconds_left is None


@requires_milvus
def test_until_live_prints_progress_then_says_picks_are_live(live_embeddings, store) -> None:
    out = StringIO()
    call_command("recommender_status", "--until-live", "--every", "0.1", stdout=out)
    assert f"Personal picks from the model are live (run {live_embeddings.id})" in out.getvalue()


@requires_milvus
def test_status_shows_each_active_runs_progress(store, monkeypatch: pytest.MonkeyPatch) -> None:
    from recommender import serving

    monkeypatch.setattr(serving, "_store", store)
    run = _running(_epochs(0.2), seconds_ago=60)
    out = StringIO()
    call_command("recommender_status", stdout=out)
    text = out.getvalue()
    assert "no run is live yet; pages serve co-rated picks" in text
    assert f"Training: run {run.id} training: epoch 1 of at most 30" in text
