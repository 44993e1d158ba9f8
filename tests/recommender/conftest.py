"""What the recommender's test modules share: tiny ratings on the test database and runs trained on them (the
management command's TINY_FLAGS), and the sweeper's messages recorded instead of sent to the broker."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.utils import timezone

from movies.models import Movie, Rating
from recommender import outbox, serving
from recommender.models import TrainingRun

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


@pytest.fixture
def trained_runs(store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings: object) -> list[TrainingRun]:
    """Three tiny runs trained one after the other on the same ratings, none published; pages read `store`."""
    make_ratings(num_users=30, num_movies=25, per_user=8)
    monkeypatch.setattr(serving, "_store", store)
    serving.forget_live_run()
    settings.ARTIFACTS_DIR = tmp_path
    for _ in range(3):
        call_command("train_recommender", *TINY_FLAGS, "--no-baselines", stdout=StringIO())
    yield list(TrainingRun.objects.order_by("id"))
    serving.forget_live_run()


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> dict[str, list]:
    """Every message the sweeper sends, by task, instead of the broker."""
    record: dict[str, list] = {"train_model": [], "publish_embeddings": [], "embed_movie": [], "remove_movies": []}

    def send(name: str, *args: object, options: dict | None = None) -> bool:
        record[name.rpartition(".")[2]].append(args[0])
        return True

    monkeypatch.setattr(outbox, "send", send)
    return record


def succeeded_run(minutes_ago: int, **fields: object) -> TrainingRun:
    return TrainingRun.objects.create(
        status=TrainingRun.Status.SUCCEEDED,
        artifact_path="x",
        finished_at=timezone.now() - timedelta(minutes=minutes_ago),
        **fields,
    )
