"""manage.py train_recommender and evaluate_recommender (recommender/management/commands/) on the database."""

from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from recommender import runs
from recommender.models import TrainingRun
from tests.conftest import requires_milvus
from tests.recommender.conftest import TINY_FLAGS, make_ratings

pytestmark = pytest.mark.django_db


def test_training_refuses_without_enough_data() -> None:
    with pytest.raises(CommandError, match="not enough data"):
        call_command("train_recommender", *TINY_FLAGS, stdout=StringIO())
    run = TrainingRun.objects.get()
    assert run.status == TrainingRun.Status.FAILED and run.failure_reason.startswith("not enough data")


def test_training_saves_a_run_with_metrics_baselines_and_artifact(tmp_path: Path) -> None:
    make_ratings(num_users=30, num_movies=25, per_user=8)
    out = StringIO()
    with override_settings(ARTIFACTS_DIR=tmp_path):
        call_command("train_recommender", *TINY_FLAGS, "--seed", "5", stdout=out)
    run = TrainingRun.objects.get()
    assert run.status == TrainingRun.Status.SUCCEEDED
    assert (run.num_users, run.num_movies, run.num_ratings) == (30, 25, 240)
    assert len(run.history) == 2 and "hr@10" in run.history[0]["validation"]
    assert set(run.baseline_metrics) == {"most_rated", "itemknn", "ease", "ease_recency"}
    assert Path(run.artifact_path).is_file() and run.config["seed"] == 5
    for name in ("PinSage", "Most rated", "ItemKNN", "EASE", "EASE+recency"):
        assert name in out.getvalue()
    evaluated = StringIO()
    call_command("evaluate_recommender", str(run.id), stdout=evaluated)
    assert evaluated.getvalue().strip() == out.getvalue().strip()


def test_the_command_trains_the_pipeline_config_and_consumes_the_pending_changes(tmp_path: Path) -> None:
    from recommender.models import RecommenderState
    from recommender.runs import maybe_retrain

    make_ratings(num_users=30, num_movies=25, per_user=8)
    RecommenderState.current()
    RecommenderState.objects.filter(id=1).update(num_changes=240)
    with override_settings(
        ARTIFACTS_DIR=tmp_path, RECOMMENDER_TRAINING_CONFIG={"hidden_dim": 8, "temperature": 0.2}, RETRAIN_MIN_CHANGES=1
    ):
        call_command(
            "train_recommender",
            "--epochs",
            "1",
            "--batches-per-epoch",
            "2",
            "--no-progress",
            "--no-baselines",
            stdout=StringIO(),
        )
        assert maybe_retrain() is None, "the import's changes are in this run: no second run is queued"
    run = TrainingRun.objects.get()
    assert (run.config["hidden_dim"], run.config["temperature"], run.config["epochs"]) == (8, 0.2, 1)
    assert RecommenderState.objects.get(id=1).num_changes == 0


def test_evaluate_without_runs_says_how_to_train() -> None:
    with pytest.raises(CommandError, match="train_recommender"):
        call_command("evaluate_recommender", stdout=StringIO())


@requires_milvus
def test_the_command_never_leaves_its_run_for_a_worker_when_another_is_training(
    store, trained_runs: list[TrainingRun]
) -> None:
    from django.core.management import CommandError
    from django.utils import timezone

    busy = TrainingRun.objects.create(status=TrainingRun.Status.RUNNING, started_at=timezone.now())
    with pytest.raises(CommandError, match=f"run {busy.id} was training"):
        call_command("train_recommender", *TINY_FLAGS, "--no-baselines", stdout=StringIO())
    mine = TrainingRun.objects.order_by("-id").first()
    assert mine.status == TrainingRun.Status.FAILED  # not QUEUED: no worker trains it later with these flags
    assert runs.request_retrain("test") is not None  # nor does it block the pipeline's next run
