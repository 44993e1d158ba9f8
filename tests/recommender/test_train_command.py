"""train_recommender and evaluate_recommender on the database."""

from datetime import UTC, datetime
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import override_settings

from movies.models import Movie, Rating
from recommender.models import TrainingRun

pytestmark = pytest.mark.django_db
TINY_FLAGS = ("--epochs", "2", "--batches-per-epoch", "3", "--hidden-dim", "16", "--no-progress")


def make_ratings(num_users: int, num_movies: int, per_user: int) -> None:
    movies = Movie.objects.bulk_create(
        [Movie(title=f"Film {m} ({1980 + m})", year=1980 + m) for m in range(num_movies)]
    )
    users = get_user_model().objects.bulk_create([get_user_model()(username=f"u{u}") for u in range(num_users)])
    Rating.objects.bulk_create(
        [
            Rating(
                user=user,
                movie=movies[(u * 3 + k) % num_movies],
                stars=Decimal(1 + (u + k) % 5),
                rated_at=datetime.fromtimestamp(1_000_000 + u * 100 + k, UTC),
            )
            for u, user in enumerate(users)
            for k in range(per_user)
        ]
    )


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


def test_a_run_already_claimed_is_not_trained_twice() -> None:
    from recommender import runs

    run = TrainingRun.objects.create(status=TrainingRun.Status.RUNNING)
    assert runs.train_model(run.id) is None
    run.refresh_from_db()
    assert run.status == TrainingRun.Status.RUNNING and run.attempts == 0
