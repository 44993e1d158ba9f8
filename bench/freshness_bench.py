"""Seconds from a change to users seeing it, and rating POST latency under broker faults."""

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "recsite.settings")


def start_workers(env: dict) -> list[subprocess.Popen]:
    celery = str(ROOT / ".venv/bin/celery")
    logs = Path(env["RECSITE_VAR_DIR"])
    return [
        subprocess.Popen(
            [
                celery,
                "-A",
                "recsite",
                "worker",
                "-n",
                f"{queue}@bench",
                "-Q",
                queue,
                "--concurrency",
                "1",
                *(["--max-tasks-per-child", "1"] if queue == "training" else []),
                "-l",
                "warning",
            ],
            cwd=ROOT,
            env=env,
            stdout=open(logs / f"{queue}.log", "w"),
            stderr=subprocess.STDOUT,
        )
        for queue in ("training", "default")
    ]


def wait_until(predicate: object, seconds: float) -> float:
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > seconds:
            raise TimeoutError
        time.sleep(0.05)
    return time.monotonic() - started


def wait_for_quiet_pipeline() -> None:
    """No run queued or running and no change pending, so the next rating's retrain is its own."""
    from recommender import runs
    from recommender.models import RecommenderState, TrainingRun

    runs.resend_stuck_runs()  # the beat sweeper's job: this bench starts no beat
    busy = (TrainingRun.Status.QUEUED, TrainingRun.Status.RUNNING)
    wait_until(lambda: not TrainingRun.objects.filter(status__in=busy).exists(), 3600)
    RecommenderState.objects.filter(id=RecommenderState.current().id).update(num_changes=0)


def rating_to_page_and_live_run(user: object, movies: list) -> tuple[float, dict]:
    """One rating POST: seconds until the user's page changes, and until the retrain it triggers is live."""
    from django.test import Client
    from django.utils import timezone

    from recommender.models import TrainingRun

    client = Client()
    client.force_login(user)
    before = client.get("/for-you/", HTTP_HX_REQUEST="true").content
    posted_at = timezone.now()
    started = time.monotonic()
    client.post(f"/movies/{movies[0].id}/rate/", {"stars": "5"})
    after = client.get("/for-you/", HTTP_HX_REQUEST="true").content
    page_seconds = time.monotonic() - started
    assert after != before, "the page did not change"
    run = None

    def live() -> bool:
        nonlocal run
        run = TrainingRun.objects.filter(created_at__gte=posted_at).order_by("id").first()
        return run is not None and (
            run.published_at is not None or run.status == TrainingRun.Status.FAILED or bool(run.held_back_reason)
        )

    seconds = wait_until(live, 3600)
    assert run.published_at is not None, f"run {run.id} not live: {run.failure_reason or run.held_back_reason}"
    training = (run.finished_at - run.started_at).total_seconds()
    return page_seconds, {
        "seconds": round(seconds, 1),
        "training_seconds": round(training, 1),
        "overhead_seconds": round(seconds - training, 1),
        "run": run.id,
    }


def new_movie_to_similar() -> float:
    from django.test import Client

    from movies.models import Genre, Movie
    from recommender import serving

    client = Client()
    admin = _staff()
    client.force_login(admin)
    genre = Genre.objects.order_by("id").first()
    title = f"Freshness Probe {time.time():.0f} (2026)"
    started = time.monotonic()
    client.post("/admin/movies/movie/add/", {"title": title, "year": 2026, "genres": [genre.id], "imdb_id": ""})
    movie = Movie.objects.get(title=title)

    def has_similar_movies() -> bool:  # its page's "More like this" is served from Milvus
        return bool(serving.similar_movies(movie, limit=5).items)

    wait_until(has_similar_movies, 120)
    return time.monotonic() - started


def _staff() -> object:
    from django.contrib.auth import get_user_model

    user, _ = get_user_model().objects.get_or_create(
        username="bench-staff", defaults={"is_staff": True, "is_superuser": True}
    )
    return user


def post_latency(user: object, movies: list, broker_url: str, count: int) -> dict:
    from django.test import Client

    from recsite.celery import app

    app.conf.broker_url = broker_url
    app._pool = None
    app.amqp._producer_pool = None
    client = Client()
    client.force_login(user)
    samples = []
    for k in range(count):
        started = time.perf_counter()
        client.post(f"/movies/{movies[2 + k % 20].id}/rate/", {"stars": str(1 + k % 5)})
        samples.append((time.perf_counter() - started) * 1000)
    return {
        "p50_ms": round(float(np.percentile(samples, 50)), 1),
        "p99_ms": round(float(np.percentile(samples, 99)), 1),
        "max_ms": round(max(samples), 1),
        "n": count,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--retrain-config",
        default='{"epochs": 1, "batches_per_epoch": 50}',
        help="TrainingConfig overrides (JSON) for the retrain this bench triggers",
    )
    parser.add_argument("--posts", type=int, default=50)
    args = parser.parse_args()
    broker = os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/13")
    var = Path(os.environ.get("RECSITE_VAR_DIR", ROOT / "var" / "bench-freshness"))
    var.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "CELERY_BROKER_URL": broker,
        "RECSITE_VAR_DIR": str(var),
        "RETRAIN_MIN_CHANGES": "1",
        "PUBLISH_TOLERANCE": "1.0",
        "RECOMMENDER_TRAINING_CONFIG": args.retrain_config,
    }
    os.environ.update(
        {
            k: env[k]
            for k in ("CELERY_BROKER_URL", "RETRAIN_MIN_CHANGES", "PUBLISH_TOLERANCE", "RECOMMENDER_TRAINING_CONFIG")
        }
    )
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.db import connection

    from movies import selectors, services
    from movies.models import Rating

    workers = start_workers(env)
    try:
        time.sleep(5)
        wait_for_quiet_pipeline()
        user, _ = get_user_model().objects.get_or_create(username=f"bench-fresh-{int(time.time())}")
        for movie in selectors.popular_movies(60)[30:35]:  # a user with a history, past onboarding
            services.rate_movie(user, movie, "4")
        wait_for_quiet_pipeline()
        movies = selectors.popular_movies(30)
        page_seconds, live_run = rating_to_page_and_live_run(user, movies)
        report = {
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "broker": broker,
            "database": connection.vendor,
            "milvus_uri": settings.MILVUS_URI,
            "retrain_config": json.loads(args.retrain_config),
            "num_ratings": Rating.objects.count(),
            "rating_to_page_s": round(page_seconds, 3),
            "rating_to_retrained_live": live_run,
            "new_movie_to_similar_s": round(new_movie_to_similar(), 2),
        }
        stop_workers(workers)  # POST latency is the web side's; a training worker would only add noise
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        hung = f"redis://127.0.0.1:{listener.getsockname()[1]}/0"
        closed = socket.socket()
        closed.bind(("127.0.0.1", 0))
        down = f"redis://127.0.0.1:{closed.getsockname()[1]}/0"
        closed.close()
        report["rating_post"] = {
            name: post_latency(user, movies, url, args.posts)
            for name, url in (("broker_up", broker), ("broker_down", down), ("broker_hung", hung))
        }
        listener.close()
        print_table(report)
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "freshness.json").write_text(json.dumps(report, indent=2))
    finally:
        stop_workers(workers)


def print_table(report: dict) -> None:
    live = report["rating_to_retrained_live"]
    rows = [
        ("rating POST -> own page changed", f"{report['rating_to_page_s']:.2f} s", "<= 1 s"),
        (
            "rating POST -> retrained run live",
            f"{live['seconds']:.1f} s (training {live['training_seconds']:.1f} s)",
            f"<= training + 60 s (overhead {live['overhead_seconds']:.1f} s)",
        ),
        ("new movie saved -> similar movies served", f"{report['new_movie_to_similar_s']:.2f} s", "<= 10 s"),
    ]
    rows += [
        (
            f"rating POST, {name.replace('_', ' ')}",
            f"p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms, max {r['max_ms']} ms",
            "<= 2 s",
        )
        for name, r in report["rating_post"].items()
    ]
    width = max(len(r[0]) for r in rows)
    for measure, value, goal in rows:
        print(f"{measure:<{width}}  {value:<48}  {goal}")


def stop_workers(workers: list[subprocess.Popen]) -> None:
    for worker in workers:
        worker.terminate()
    for worker in workers:
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()


if __name__ == "__main__":
    main()
