"""Serving across Milvus restarts and hangs, with the production defaults (the breaker on), on a real server.
Cross-cutting: a private milvus-lite server stopped, frozen and restarted under serving, the vector store and
/health/ together (test_serving.py and test_vector_store.py cover each module on the shared server)."""

import gc
import os
import signal
import time

import numpy as np
import pytest
from django.conf import settings

from recommender import serving
from recommender.vector_store import MovieVectors, VectorStore


def _publish_catalogue(server_uri: str, run_id: int, movies: list) -> None:
    vectors = np.zeros((len(movies), 4), dtype=np.float32)
    for i in range(len(movies)):
        vectors[i, 0 if i < 6 else 1] = 1.0
        vectors[i, 2 + i % 2] = 0.3 + 0.02 * i
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    VectorStore(server_uri, timeout=10, alias=settings.MILVUS_ALIAS).publish(
        run_id,
        MovieVectors(
            np.array([m.id for m in movies]),
            vectors,
            np.array([m.year for m in movies], dtype=np.int32),
            [[g.name for g in m.genres.all()] for m in movies],
        ),
    )


@pytest.fixture
def served_by(milvus_server, catalogue_movies, settings: object) -> object:
    """Pages served from a private milvus-lite server, through the store settings build (default breaker)."""
    from recommender.models import RecommenderState, TrainingRun

    run = TrainingRun.objects.create(
        status=TrainingRun.Status.SUCCEEDED, config={"scoring": {"neighbors_per_item": 10, "min_stars": 3.5}}
    )
    _publish_catalogue(milvus_server.uri, run.id, catalogue_movies)
    RecommenderState.objects.update_or_create(id=1, defaults={"live_run": run})  # as runs.publish records it
    settings.MILVUS_URI = milvus_server.uri
    serving._store = None
    serving.forget_live_run()
    yield milvus_server
    serving._store = None
    serving.forget_live_run()


def _page_source(user: object) -> tuple[str, float]:
    serving.forget_live_run()  # as a page after the live-run cache expired
    started = time.monotonic()
    result = serving.recommend_movies_for(user, limit=5)
    return result.source, time.monotonic() - started


@pytest.mark.django_db
@pytest.mark.timeout(240)
def test_personal_picks_return_within_30_s_of_milvus_restarting_with_the_default_breaker(alice, served_by) -> None:
    assert settings.MILVUS_BREAKER_S > 0  # the breaker on, as in production, not the setting that hides the fault
    assert _page_source(alice)[0] == serving.Source.PERSONAL
    served_by.stop()
    for _ in range(3):  # pages during the outage fall back (and open the breaker)
        assert _page_source(alice)[0] == serving.Source.POPULAR
    served_by.start()  # the same data; every collection comes back released
    back_at = time.monotonic()
    sources = []
    while time.monotonic() - back_at < 45:
        source, _ = _page_source(alice)
        sources.append(source)
        if source == serving.Source.PERSONAL:
            break
        time.sleep(0.5)
    assert sources[-1] == serving.Source.PERSONAL, f"still falling back 45 s after the restart: {sources}"
    assert time.monotonic() - back_at <= 30
    for _ in range(5):  # and they stay back
        assert _page_source(alice)[0] == serving.Source.PERSONAL


@pytest.mark.django_db
@pytest.mark.timeout(240)
def test_a_released_collection_is_loaded_in_the_background_and_no_page_waits_for_it(alice, served_by) -> None:
    from pymilvus import MilvusClient

    assert _page_source(alice)[0] == serving.Source.PERSONAL
    client = MilvusClient(uri=served_by.uri, timeout=10)
    live = client.describe_alias(settings.MILVUS_ALIAS)["collection_name"]
    client.release_collection(live)  # what a restart leaves behind, without the outage before it
    source, seconds = _page_source(alice)
    assert source == serving.Source.POPULAR and seconds < 0.5  # the page did not wait for the load
    deadline = time.monotonic() + 15
    while _page_source(alice)[0] != serving.Source.PERSONAL:
        assert time.monotonic() < deadline, "the background probe never loaded the collection"
        time.sleep(0.2)
    assert serving.vector_store().failure() == ""


@pytest.mark.django_db
@pytest.mark.timeout(240)
def test_with_milvus_hung_one_page_waits_the_timeout_and_the_rest_answer_at_once(alice, served_by) -> None:
    assert _page_source(alice)[0] == serving.Source.PERSONAL
    os.kill(served_by.process.pid, signal.SIGSTOP)
    try:
        timings = []
        # Long past the breaker window, through several background probes that each wait out the timeout.
        deadline = time.monotonic() + max(18.0, 5 * settings.MILVUS_BREAKER_S)
        while time.monotonic() < deadline:
            source, seconds = _page_source(alice)
            assert source == serving.Source.POPULAR
            timings.append(seconds)
            time.sleep(0.2)
    finally:
        os.kill(served_by.process.pid, signal.SIGCONT)
    assert timings[0] < settings.MILVUS_TIMEOUT_S + 1.5
    assert max(timings[1:]) < 0.3, [round(t, 2) for t in timings]
    deadline = time.monotonic() + 30
    while _page_source(alice)[0] != serving.Source.PERSONAL:
        assert time.monotonic() < deadline, "pages did not go back to Milvus after it woke up"
        time.sleep(0.5)


@pytest.fixture
def milvus_check(settings: object) -> object:
    """Asks /health/ as a monitor would (with the token) and returns its Milvus check, fresh rounds each test."""
    from django.test import Client

    from recsite import health

    settings.HEALTH_TOKEN = "monitor-secret"
    client = Client()
    health.forget_checks()
    yield lambda: client.get("/health/", HTTP_AUTHORIZATION="Bearer monitor-secret").json()["checks"]["milvus"]
    health.forget_checks()


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(240)
def test_health_answers_at_once_with_milvus_hung_and_says_pages_fall_back(
    alice, served_by, milvus_check: object
) -> None:
    milvus = milvus_check()
    assert milvus["ok"] and milvus["status"].startswith(f"live run {alice_run_id()}")
    # A full collection of this test process's heap (the whole suite's imports) alone takes about 0.11 s here;
    # frozen, the timings measure health itself (bench/restart times it through gunicorn, unfrozen).
    gc.collect()
    gc.freeze()
    os.kill(served_by.process.pid, signal.SIGSTOP)
    try:
        timings, said = [], None
        started = time.monotonic()
        while time.monotonic() - started < 15:
            began = time.monotonic()
            check = milvus_check()
            timings.append(time.monotonic() - began)
            if not check["ok"]:
                said = check["error"]
            time.sleep(0.1)
    finally:
        os.kill(served_by.process.pid, signal.SIGCONT)
        gc.unfreeze()
    assert max(timings) <= 0.1, (
        f"slowest /health/ {sorted(timings)[-5:]} of {len(timings)}, at {timings.index(max(timings))}"
    )
    assert said and said.startswith(f"live run {alice_run_id()}, but Milvus cannot serve it ("), said


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(240)
def test_health_says_pages_fall_back_while_milvus_is_down_and_recovers_after_a_restart(
    alice, served_by, milvus_check: object
) -> None:
    def check_until(within_s: float, ok: bool) -> dict:
        deadline = time.monotonic() + within_s
        while True:
            check = milvus_check()
            if check["ok"] == ok or time.monotonic() > deadline:
                return check
            time.sleep(0.5)

    assert check_until(10, ok=True)["ok"]
    served_by.stop()
    down = check_until(15, ok=False)
    assert not down["ok"] and f"live run {alice_run_id()}, but Milvus cannot serve it" in down["error"]
    served_by.start()
    assert check_until(30, ok=True)["ok"]


def alice_run_id() -> int:
    from recommender.models import TrainingRun

    return TrainingRun.objects.get().id


@pytest.mark.django_db
@pytest.mark.timeout(240)
def test_with_milvus_stopped_pages_serve_co_rated_picks_and_similar_movies_then_the_model_again(
    alice, co_raters, served_by
) -> None:
    """The production breaker, a real server stopped and started: the co-rated fallback, not popular movies."""
    assert settings.MILVUS_BREAKER_S > 0
    assert _page_source(alice)[0] == serving.Source.PERSONAL
    served_by.stop()
    for _ in range(3):
        source, seconds = _page_source(alice)
        assert source == serving.Source.CO_RATED and seconds < 3
    from movies.models import Movie

    similar = serving.similar_movies(Movie.objects.order_by("id").first(), limit=5)
    assert similar.source == serving.Source.CO_RATED and similar.items
    served_by.start()
    deadline = time.monotonic() + 60
    while _page_source(alice)[0] != serving.Source.PERSONAL:
        assert time.monotonic() < deadline, "the model's picks never came back"
        time.sleep(0.5)


@pytest.mark.django_db
@pytest.mark.timeout(240)
def test_after_a_restart_an_experiments_challenger_collection_comes_back_too(
    alice, served_by, catalogue_movies
) -> None:
    """The probe loaded the live collection only; a read of the challenger's (released by the restart) opened the
    breaker again at every page, for every page, for as long as the experiment ran."""
    assert settings.MILVUS_BREAKER_S > 0
    store = serving.vector_store()
    publisher = VectorStore(served_by.uri, timeout=10, alias=settings.MILVUS_ALIAS)
    ids = np.array([m.id for m in catalogue_movies])
    vectors = np.eye(len(ids), 4, dtype=np.float32) + 0.1
    challenger = publisher.stage(
        999,
        MovieVectors(
            ids,
            vectors / np.linalg.norm(vectors, axis=1, keepdims=True),
            np.zeros(len(ids), np.int32),
            [[] for _ in ids],
        ),
    )
    assert store.get_neighbors(ids[:3].tolist(), challenger)
    served_by.stop()
    served_by.start()  # every collection comes back released
    back_at = time.monotonic()
    while True:
        try:
            if store.get_neighbors(ids[:3].tolist(), challenger):
                break
        except Exception:
            pass
        assert time.monotonic() - back_at < 45, "the challenger's collection never came back"
        time.sleep(0.5)
    for _ in range(5):  # and the pages stay personal, the breaker shut
        assert _page_source(alice)[0] == serving.Source.PERSONAL
        assert store.get_neighbors(ids[:3].tolist(), challenger)
