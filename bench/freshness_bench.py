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
    return [subprocess.Popen([celery, "-A", "recsite", "worker", "-n", f"{queue}@bench", "-Q", queue,
                              "--concurrency", "1", *(["--max-tasks-per-child", "1"] if queue == "training" else []),
                              "-l", "warning"], cwd=ROOT, env=env,
                             stdout=open(logs / f"{queue}.log", "w"), stderr=subprocess.STDOUT)
            for queue in ("training", "default")]


def wait_until(predicate: object, seconds: float) -> float:
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > seconds:
            raise TimeoutError
        time.sleep(0.05)
    return time.monotonic() - started


def rating_to_page(user: object, movies: list) -> float:
    from django.test import Client

    client = Client()
    client.force_login(user)
    before = client.get("/for-you/", HTTP_HX_REQUEST="true").content
    started = time.monotonic()
    client.post(f"/movies/{movies[0].id}/rate/", {"stars": "5"})
    after = client.get("/for-you/", HTTP_HX_REQUEST="true").content
    assert after != before, "the page did not change"
    return time.monotonic() - started


def rating_to_live_run(user: object, movies: list) -> dict:
    from movies import services
    from recommender.models import TrainingRun

    latest = TrainingRun.objects.order_by("-id").first()
    started = time.monotonic()
    services.rate_movie(user, movies[1], "4.5")
    run = None

    def live() -> bool:
        nonlocal run
        run = TrainingRun.objects.filter(id__gt=latest.id if latest else 0, published_at__isnull=False).first()
        return run is not None
    seconds = wait_until(live, 3600)
    return {"seconds": round(seconds, 1), "training_seconds": round(run.duration_seconds or 0, 1), "run": run.id}


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

    def searchable() -> bool:
        return movie.id in serving.vector_store().get_vectors([movie.id])
    wait_until(searchable, 120)
    return time.monotonic() - started


def _staff() -> object:
    from django.contrib.auth import get_user_model

    user, _ = get_user_model().objects.get_or_create(username="bench-staff", defaults={"is_staff": True,
                                                                                       "is_superuser": True})
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
    return {"p50_ms": round(float(np.percentile(samples, 50)), 1), "p99_ms": round(float(np.percentile(samples, 99)), 1),
            "max_ms": round(max(samples), 1), "n": count}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--retrain-config", default='{"epochs": 1, "batches_per_epoch": 50}',
                        help="TrainingConfig overrides (JSON) for the retrain this bench triggers")
    parser.add_argument("--posts", type=int, default=50)
    args = parser.parse_args()
    broker = os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/13")
    var = Path(os.environ.get("RECSITE_VAR_DIR", ROOT / "var" / "bench-freshness"))
    var.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "CELERY_BROKER_URL": broker, "RECSITE_VAR_DIR": str(var), "RETRAIN_MIN_CHANGES": "1",
           "PUBLISH_TOLERANCE": "1.0", "RECOMMENDER_TRAINING_CONFIG": args.retrain_config}
    os.environ.update({k: env[k] for k in ("CELERY_BROKER_URL", "RETRAIN_MIN_CHANGES", "PUBLISH_TOLERANCE",
                                           "RECOMMENDER_TRAINING_CONFIG")})
    import django

    django.setup()
    from django.contrib.auth import get_user_model

    from movies import selectors

    workers = start_workers(env)
    try:
        time.sleep(5)
        user, _ = get_user_model().objects.get_or_create(username=f"bench-fresh-{int(time.time())}")
        movies = selectors.popular_movies(30)
        report = {"measured_at": time.strftime("%Y-%m-%dT%H:%M:%S"), "broker": broker,
                  "rating_to_page_s": round(rating_to_page(user, movies), 3),
                  "new_movie_to_similar_s": round(new_movie_to_similar(), 2),
                  "rating_to_retrained_live": rating_to_live_run(user, movies)}
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        hung = f"redis://127.0.0.1:{listener.getsockname()[1]}/0"
        closed = socket.socket()
        closed.bind(("127.0.0.1", 0))
        down = f"redis://127.0.0.1:{closed.getsockname()[1]}/0"
        closed.close()
        report["rating_post"] = {name: post_latency(user, movies, url, args.posts)
                                 for name, url in (("broker_up", broker), ("broker_down", down), ("broker_hung", hung))}
        listener.close()
        print(json.dumps(report, indent=2))
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "freshness.json").write_text(json.dumps(report, indent=2))
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()


if __name__ == "__main__":
    main()
