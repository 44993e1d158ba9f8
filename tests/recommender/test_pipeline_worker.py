"""The Celery pipeline with a real prefork worker, Redis, the test database and milvus-lite (C-1 to C-6, C-10).
Cross-cutting: worker processes, the broker, runs, vectors and the store together; what each module does alone
is in its own test module (test_runs.py, test_vectors.py, test_tasks.py)."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.test import override_settings

from movies.models import Movie, Rating
from recommender import outbox, runs
from recommender.models import RecommenderState, TrainingRun
from tests.conftest import ROOT, redis_is_up, requires_milvus, shared_milvus_uri, subprocess_database_url
from tests.recommender.conftest import make_ratings

_configured = os.environ.get("CELERY_BROKER_URL", "")
REDIS_URL = _configured if _configured.startswith("redis://") else "redis://127.0.0.1:6379/14"
TINY = {
    "epochs": 2,
    "batches_per_epoch": 3,
    "hidden_dim": 16,
    "walk": {"num_layers": 1, "num_random_walks": 5, "num_neighbors": 5},
}


pytestmark = [
    requires_milvus,
    pytest.mark.redis,
    pytest.mark.worker,
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(240),
]


class Worker:
    def __init__(self, tmp_path: Path, alias: str, extra_env: dict[str, str]) -> None:
        self.env = {
            **os.environ,
            "DATABASE_URL": subprocess_database_url(),
            "CELERY_BROKER_URL": REDIS_URL,
            "MILVUS_URI": shared_milvus_uri(),
            "MILVUS_ALIAS": alias,
            "RECSITE_VAR_DIR": str(tmp_path),
            "RECSITE_ARTIFACTS_DIR": str(tmp_path / "artifacts"),
            "PUBLISH_TOLERANCE": "1.0",
            "RECOMMENDER_TRAINING_CONFIG": json.dumps(TINY),
            "DGLBACKEND": "pytorch",
            **extra_env,
        }
        self.log = open(tmp_path / "worker.log", "w")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "recsite",
                "worker",
                "-Q",
                "default,training",
                "--concurrency",
                "1",
                "--max-tasks-per-child",
                "1",
                "-P",
                "prefork",
                "--include",
                "tests.worker_faults",
                "-l",
                "info",
                "--without-heartbeat",
                "--without-gossip",
                "--without-mingle",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def child_pids(self) -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True).stdout
        return [int(pid) for pid in out.split()]

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


@pytest.fixture
def worker_env() -> dict[str, str]:
    """Extra environment for the worker; a test overrides this fixture's value with parametrize or its own."""
    return {}


@pytest.fixture
def worker(tmp_path: Path, settings: object, worker_env: dict[str, str]) -> Worker:
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()
    alias = f"w{uuid.uuid4().hex[:8]}"
    settings.CELERY_BROKER_URL = REDIS_URL
    settings.MILVUS_ALIAS = alias
    settings.RECOMMENDER_TRAINING_CONFIG = TINY
    from recsite.celery import app

    app.conf.broker_url = REDIS_URL
    app.conf.broker_transport_options = {"socket_timeout": 2, "socket_connect_timeout": 2}
    app._pool = None  # earlier tests may have connected to another broker address
    app.amqp._producer_pool = None
    running = Worker(tmp_path, alias, worker_env)
    yield running
    running.stop()
    from recommender.serving import forget_live_run
    from recommender.vector_store import VectorStore

    store = VectorStore(shared_milvus_uri(), timeout=10, alias=alias)
    with store._calls("cleanup") as client:
        client.drop_alias(alias)
        for name in store.run_collections():
            client.drop_collection(name)
    forget_live_run()


def wait_for(predicate: object, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def test_a_prefork_worker_trains_and_publishes_twice(worker: Worker) -> None:
    make_ratings(num_users=30, num_movies=25, per_user=8)
    first = runs.request_retrain("test")
    wait_for(lambda: TrainingRun.objects.get(id=first.id).published_at is not None, 180, "the first run to go live")
    second = runs.request_retrain("test")
    wait_for(lambda: TrainingRun.objects.get(id=second.id).published_at is not None, 180, "the second run to go live")
    assert TrainingRun.objects.filter(status=TrainingRun.Status.SUCCEEDED).count() == 2


def test_a_worker_killed_mid_training_redelivers_and_completes_once(worker: Worker) -> None:
    make_ratings(num_users=30, num_movies=25, per_user=8)
    # Long enough to be killed mid-way however fast the trainer gets: no early stopping, many batches. The
    # redelivered attempt trains the same (the config travels with the run), so the test bounds it by time.
    with override_settings(
        RECOMMENDER_TRAINING_CONFIG={**TINY, "epochs": 12, "batches_per_epoch": 400, "patience": 100_000}
    ):
        run = runs.request_retrain("test")
    wait_for(lambda: TrainingRun.objects.get(id=run.id).status == TrainingRun.Status.RUNNING, 60, "training to start")
    time.sleep(1)
    assert TrainingRun.objects.get(id=run.id).status == TrainingRun.Status.RUNNING, "killed mid-training, not after"
    for pid in worker.child_pids():
        os.kill(pid, signal.SIGKILL)
    wait_for(lambda: TrainingRun.objects.get(id=run.id).published_at is not None, 200, "the redelivered run to go live")
    run.refresh_from_db()
    assert run.status == TrainingRun.Status.SUCCEEDED and run.attempts == 2
    assert TrainingRun.objects.count() == 1


def test_a_run_that_always_dies_ends_failed_after_the_cap(worker: Worker) -> None:
    make_ratings(num_users=30, num_movies=25, per_user=8)
    run = runs.request_retrain("simulate_oom")  # tests/worker_faults reads the reason
    wait_for(lambda: TrainingRun.objects.get(id=run.id).status == TrainingRun.Status.FAILED, 200, "the run to fail")
    run.refresh_from_db()
    assert "died 3 times" in run.failure_reason and run.published_at is None
    import redis

    time.sleep(2)
    assert redis.Redis.from_url(REDIS_URL).llen("training") == 0


def test_a_burst_of_ratings_queues_at_most_one_run(worker: Worker, settings: object) -> None:
    from django.contrib.auth import get_user_model

    from movies import services

    make_ratings(num_users=30, num_movies=25, per_user=8)
    settings.RETRAIN_MIN_CHANGES = 10
    user = get_user_model().objects.create_user("burst")
    movies = list(Movie.objects.all()[:25])
    seen = []
    for k in range(100):
        services.rate_movie(user, movies[k % 25], str(1 + k % 5))
        runs.maybe_retrain()
        seen.append(
            (
                TrainingRun.objects.filter(status=TrainingRun.Status.QUEUED).count(),
                TrainingRun.objects.filter(status=TrainingRun.Status.RUNNING).count(),
            )
        )
        time.sleep(0.1)
    assert max(q for q, _ in seen) <= 1 and max(r for _, r in seen) <= 1
    assert TrainingRun.objects.count() <= 4


def rate_with_broker(broker_url: str, user: object, movie: Movie) -> float:
    from django.test import Client

    from recsite.celery import app

    app.conf.broker_url = broker_url
    app.conf.broker_transport_options = {"socket_timeout": 2, "socket_connect_timeout": 2}
    # Forget cached connections so the next send dials the new broker address.
    app._pool = None
    app.amqp._producer_pool = None
    client = Client()
    client.force_login(user)
    started = time.monotonic()
    response = client.post(f"/movies/{movie.id}/rate/", {"stars": "4.5"})
    seconds = time.monotonic() - started
    assert response.status_code == 302
    outbox.wait_for_sends()
    return seconds


@pytest.mark.parametrize("kind", ["down", "hung"])
def test_a_rating_is_saved_fast_when_the_broker_is_down_or_hung(kind: str) -> None:
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user(f"rater-{kind}")
    movie = Movie.objects.create(title="Harbour Lights (1988)", year=1988)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    if kind == "hung":
        listener.listen(16)  # accepts connections and never answers: a frozen Redis
    port = listener.getsockname()[1]
    if kind == "down":
        listener.close()
    try:
        seconds = rate_with_broker(f"redis://127.0.0.1:{port}/0", user, movie)
    finally:
        listener.close()
    assert seconds < 2
    assert Rating.objects.filter(user=user, movie=movie).exists()
    assert RecommenderState.current().num_changes >= 1
    rate_with_broker(REDIS_URL, user, movie)  # the broker is back
    assert outbox.send(outbox.SWEEP)


LONG = {**TINY, "epochs": 40, "batches_per_epoch": 20, "patience": 100}


def live_collection(alias: str) -> str | None:
    from recommender.vector_store import VectorStore

    return VectorStore(shared_milvus_uri(), timeout=10, alias=alias).live_collection()


# The children import torch and dgl before taking a task (WORKER_PRELOAD_ML), so the limit falls in training.
@pytest.mark.parametrize("worker_env", [{"TRAINING_SOFT_TIME_LIMIT_S": "15", "TRAINING_TIME_LIMIT_S": "120"}])
def test_a_run_past_its_soft_time_limit_fails_and_leaves_the_alias_alone(worker: Worker, settings: object) -> None:
    settings.TRAINING_SOFT_TIME_LIMIT_S, settings.TRAINING_TIME_LIMIT_S = 15, 120  # the sender's, as in the worker
    make_ratings(num_users=30, num_movies=25, per_user=8)
    with override_settings(RECOMMENDER_TRAINING_CONFIG={**LONG, "epochs": 100_000, "patience": 100_000}):
        run = runs.request_retrain("test")
    wait_for(lambda: TrainingRun.objects.get(id=run.id).status == TrainingRun.Status.FAILED, 150, "the time-out")
    run.refresh_from_db()
    assert run.failure_reason == "timed out after 15 s" and run.published_at is None
    assert 14 <= (run.finished_at - run.started_at).total_seconds() < 60
    assert live_collection(worker.env["MILVUS_ALIAS"]) is None


def test_the_hard_time_limit_kills_a_stuck_child_and_fails_the_run(worker: Worker, settings: object) -> None:
    settings.TRAINING_SOFT_TIME_LIMIT_S, settings.TRAINING_TIME_LIMIT_S = 3, 10
    make_ratings(num_users=30, num_movies=25, per_user=8)
    run = runs.request_retrain("simulate_stuck")  # tests/worker_faults reads the reason
    wait_for(lambda: TrainingRun.objects.get(id=run.id).status == TrainingRun.Status.RUNNING, 90, "training to start")
    stuck_child = worker.child_pids()
    wait_for(lambda: TrainingRun.objects.get(id=run.id).status == TrainingRun.Status.FAILED, 60, "the hard limit")
    run.refresh_from_db()
    assert run.failure_reason == "killed at the hard time limit of 10 s" and run.published_at is None
    wait_for(lambda: not set(stuck_child) & set(worker.child_pids()), 30, "the stuck child to be replaced")
    assert live_collection(worker.env["MILVUS_ALIAS"]) is None
    second = runs.request_retrain("test")
    wait_for(lambda: TrainingRun.objects.get(id=second.id).published_at is not None, 180, "the next run to go live")


def test_ratings_arriving_during_training_wait_for_the_next_run(worker: Worker) -> None:
    from django.contrib.auth import get_user_model

    from movies import services

    make_ratings(num_users=30, num_movies=25, per_user=8)
    with override_settings(RECOMMENDER_TRAINING_CONFIG={**LONG, "epochs": 8}):
        run = runs.request_retrain("test")
    wait_for(lambda: TrainingRun.objects.get(id=run.id).num_ratings is not None, 120, "the snapshot")
    late = get_user_model().objects.create_user("late")
    for movie in Movie.objects.all()[:5]:
        services.rate_movie(late, movie, "4")
    wait_for(lambda: TrainingRun.objects.get(id=run.id).status == TrainingRun.Status.SUCCEEDED, 200, "the run")
    run.refresh_from_db()
    assert run.num_ratings == 240 and Rating.objects.count() == 245
    assert RecommenderState.current().num_changes == 5


def test_redis_restarted_while_training_the_run_still_completes_once(worker: Worker) -> None:
    make_ratings(num_users=30, num_movies=25, per_user=8)
    with override_settings(RECOMMENDER_TRAINING_CONFIG={**LONG, "epochs": 10}):
        run = runs.request_retrain("test")
    wait_for(lambda: TrainingRun.objects.get(id=run.id).status == TrainingRun.Status.RUNNING, 60, "training to start")
    subprocess.run(["redis-cli", "-h", "127.0.0.1", "shutdown", "nosave"], capture_output=True)
    time.sleep(2)
    subprocess.run(
        [
            "redis-server",
            "--daemonize",
            "yes",
            "--bind",
            "127.0.0.1",
            "-::1",
            "--port",
            "6379",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            "/var/lib/redis",
            "--logfile",
            "/var/log/redis/ci.log",
        ],
        check=True,
    )
    wait_for(redis_is_up, 30, "Redis to come back")
    wait_for(lambda: TrainingRun.objects.get(id=run.id).published_at is not None, 200, "the run to go live")
    assert TrainingRun.objects.filter(status=TrainingRun.Status.SUCCEEDED).count() == 1


def test_a_killed_database_connection_fails_the_run_and_the_next_one_works(worker: Worker) -> None:
    from django.db import connection

    if connection.vendor != "mysql":
        pytest.skip("KILL CONNECTION needs MariaDB/MySQL")
    make_ratings(num_users=30, num_movies=25, per_user=8)
    with override_settings(RECOMMENDER_TRAINING_CONFIG={**LONG, "epochs": 10}):
        run = runs.request_retrain("test")
    wait_for(lambda: len(TrainingRun.objects.get(id=run.id).history) >= 1, 120, "the first epoch")
    with connection.cursor() as cursor:
        cursor.execute("SELECT ID FROM information_schema.PROCESSLIST WHERE DB = DATABASE() AND ID <> CONNECTION_ID()")
        for (connection_id,) in cursor.fetchall():
            cursor.execute(f"KILL CONNECTION {int(connection_id)}")
    wait_for(lambda: TrainingRun.objects.get(id=run.id).status != TrainingRun.Status.RUNNING, 200, "the run to end")
    run.refresh_from_db()
    assert run.status == TrainingRun.Status.FAILED and "OperationalError" in run.failure_reason
    second = runs.request_retrain("test")
    wait_for(lambda: TrainingRun.objects.get(id=second.id).status == TrainingRun.Status.SUCCEEDED, 200, "the next run")


def test_two_training_workers_never_train_two_runs_at_once(worker: Worker, tmp_path: Path, settings: object) -> None:
    second_dir = tmp_path / "second"
    second_dir.mkdir()
    second = Worker(second_dir, worker.env["MILVUS_ALIAS"], {})
    try:
        make_ratings(num_users=30, num_movies=25, per_user=8)
        settings.RECOMMENDER_TRAINING_CONFIG = {**TINY, "epochs": 8, "batches_per_epoch": 10}
        first = runs.request_retrain("test")
        wait_for(lambda: TrainingRun.objects.get(id=first.id).status != TrainingRun.Status.QUEUED, 120, "a start")
        later = runs.request_retrain("test")  # queued while the first trains; the idle worker gets its message
        most_at_once = 0
        deadline = time.monotonic() + 200
        while TrainingRun.objects.filter(id__in=[first.id, later.id], finished_at__isnull=False).count() < 2:
            assert time.monotonic() < deadline, "the two runs did not both finish"
            most_at_once = max(most_at_once, TrainingRun.objects.filter(status=TrainingRun.Status.RUNNING).count())
            time.sleep(0.1)
    finally:
        second.stop()
    first.refresh_from_db()
    later.refresh_from_db()
    assert most_at_once == 1
    assert first.status == later.status == TrainingRun.Status.SUCCEEDED
    assert later.started_at >= first.finished_at
