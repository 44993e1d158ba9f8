"""The vector store's contract, against a real milvus-lite server (M-1 to M-7)."""

import os
import signal
import time

import numpy as np
import pytest

from recommender.vector_store import MovieVectors, PublishFailed, VectorStore, VectorStoreUnavailable, search_filter
from tests.conftest import requires_milvus


def movie_vectors(num: int = 50, dim: int = 8, seed: int = 0) -> MovieVectors:
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(num, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return MovieVectors(
        np.arange(1, num + 1, dtype=np.int64),
        vectors,
        np.array([1980 + i % 20 for i in range(num)], dtype=np.int32),
        [["Drama"] if i % 2 else ["Comedy", "Drama"] for i in range(num)],
    )


@requires_milvus
def test_publish_switches_the_alias_and_search_finds_each_movie_first(store: VectorStore) -> None:
    movies = movie_vectors()
    name = store.publish(1, movies)
    assert store.live_collection() == name == store.collection_for_run(1)
    assert store.count(name) == 50
    hits = store.search(movies.vectors[:3], 5)
    assert [row[0].movie_id for row in hits] == [1, 2, 3]
    assert hits[0][0].score == pytest.approx(1.0, abs=1e-4)
    assert set(store.get_vectors([4, 5, 999])) == {4, 5}


@requires_milvus
def test_neighbour_lists_are_stored_with_each_movie_and_match_the_search(store: VectorStore) -> None:
    from dataclasses import replace

    from recommender.vectors import nearest_movies

    movies = movie_vectors()
    neighbors, scores = nearest_movies(movies.movie_ids, movies.vectors)
    name = store.publish(1, replace(movies, neighbors=neighbors, neighbor_scores=scores))
    assert store.has_neighbor_lists(name)
    stored = store.get_neighbors([7, 8, 999])
    assert set(stored) == {7, 8} and len(stored[7][0]) == 49 and 7 not in stored[7][0].tolist()
    searched = [h.movie_id for h in store.search(movies.vectors[6:7], 11)[0] if h.movie_id != 7][:10]
    assert stored[7][0][:10].tolist() == searched
    assert np.all(np.diff(stored[7][1]) <= 1e-6)  # nearest first
    store.upsert_movies(1, replace(movies_slice(movies, 0, 1), neighbors=None, neighbor_scores=None))
    assert store.get_neighbors([1])[1][0].size == 0  # a movie upserted without a list has an empty one


def movies_slice(movies: MovieVectors, start: int, stop: int) -> MovieVectors:
    part = slice(start, stop)
    return MovieVectors(movies.movie_ids[part], movies.vectors[part], movies.years[part], movies.genres[part])


@requires_milvus
def test_publishing_the_same_run_twice_is_harmless(store: VectorStore) -> None:
    movies = movie_vectors()
    store.publish(1, movies)
    store.publish(1, movies)
    assert store.run_collections() == [store.collection_for_run(1)]


@requires_milvus
def test_clean_up_keeps_the_runs_asked_for_and_the_live_one_and_a_switch_goes_back(store: VectorStore) -> None:
    for run_id in (1, 2, 3, 4):
        store.publish(run_id, movie_vectors(seed=run_id))
    store.switch_to(store.collection_for_run(2))
    assert store.drop_old_collections({1, 4}) == [store.collection_for_run(3)]  # run 2 is live: never dropped
    assert store.run_collections() == [store.collection_for_run(r) for r in (1, 2, 4)]
    assert store.live_collection() == store.collection_for_run(2)
    hits = store.search(movie_vectors(seed=2).vectors[:1], 1)
    assert hits[0][0].movie_id == 1


@requires_milvus
def test_every_row_carries_the_run_whose_model_wrote_it(store: VectorStore) -> None:
    store.publish(1, movie_vectors(seed=1))
    store.publish(2, movie_vectors(seed=2))
    store.upsert_movies(1, movies_slice(movie_vectors(seed=9), 0, 1))  # written by run 1's model, after run 2 went live
    with store._calls("read tags") as client:
        tags = {
            run: {
                row["run_id"]
                for row in client.query(
                    store.collection_for_run(run), filter="movie_id > 0", output_fields=["run_id"], limit=100
                )
            }
            for run in (1, 2)
        }
    assert tags == {1: {1}, 2: {2}}
    assert store.get_vectors([1])[1] == pytest.approx(movie_vectors(seed=2).vectors[0])  # the live run's vector


@requires_milvus
def test_failed_publish_is_never_visible_and_a_rerun_completes(
    store: VectorStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.publish(1, movie_vectors(seed=1))
    with store._calls("spy") as client:
        real_upsert = client.upsert
    calls = {"n": 0}

    def failing_upsert(*args: object, **kwargs: object) -> object:
        calls["n"] += 1
        if calls["n"] == 2:
            from pymilvus.exceptions import MilvusException

            raise MilvusException(message="injected failure after one batch")
        return real_upsert(*args, **kwargs)

    monkeypatch.setattr(store._client, "upsert", failing_upsert)
    with pytest.raises(VectorStoreUnavailable):
        store.publish(2, movie_vectors(num=50, seed=2), batch_size=20)
    assert store.live_collection() == store.collection_for_run(1)
    assert store.search(movie_vectors(seed=1).vectors[:1], 1)[0][0].movie_id == 1
    monkeypatch.undo()
    store._client = None
    store.publish(2, movie_vectors(seed=2), batch_size=20)
    assert store.live_collection() == store.collection_for_run(2)


@requires_milvus
def test_publish_with_a_wrong_count_does_not_switch(store: VectorStore, monkeypatch: pytest.MonkeyPatch) -> None:
    store.publish(1, movie_vectors(seed=1))
    monkeypatch.setattr(store, "count", lambda name: 49)
    with pytest.raises(PublishFailed, match="holds 49 vectors, expected 50"):
        store.publish(2, movie_vectors(seed=2))
    assert store.live_collection() == store.collection_for_run(1)


@requires_milvus
def test_a_new_dimension_gets_a_new_collection(store: VectorStore) -> None:
    store.publish(1, movie_vectors(dim=8))
    store.publish(2, movie_vectors(dim=16))
    assert store.get_vectors([1])[1].shape == (16,)


@requires_milvus
def test_the_live_collection_cannot_be_dropped(store: VectorStore) -> None:
    name = store.publish(1, movie_vectors())
    with pytest.raises(PublishFailed, match="refusing"):
        store.drop_collection(name)
    assert store.live_collection() == name


@requires_milvus
def test_filters_are_applied_inside_the_search(store: VectorStore) -> None:
    movies = movie_vectors()
    store.publish(1, movies)
    hits = store.search(movies.vectors[:1], 50, search_filter("Comedy", 1985, 1990))[0]
    ids = [h.movie_id for h in hits]
    assert ids and all((i - 1) % 2 == 0 and 1985 <= 1980 + (i - 1) % 20 <= 1990 for i in ids)
    with pytest.raises(ValueError):
        search_filter('Drama" or movie_id > 0 or genres like "')


def test_no_server_fails_fast_as_unavailable() -> None:
    down = VectorStore("http://127.0.0.1:9", timeout=1)
    started = time.monotonic()
    with pytest.raises(VectorStoreUnavailable):
        down.search(np.ones((1, 8), dtype=np.float32), 5)
    assert time.monotonic() - started < 1.5


@pytest.mark.timeout(120)
def test_hung_server_is_bounded_by_the_timeout(milvus_server) -> None:
    store = VectorStore(milvus_server.uri, timeout=2, alias="hung")
    store.publish(1, movie_vectors())
    os.kill(milvus_server.process.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        with pytest.raises(VectorStoreUnavailable):
            store.search(movie_vectors().vectors[:1], 5)
        assert time.monotonic() - started < 3.5
    finally:
        os.kill(milvus_server.process.pid, signal.SIGCONT)
    assert store.search(movie_vectors().vectors[:1], 1)[0][0].movie_id == 1


@pytest.mark.timeout(180)
def test_search_works_again_after_a_server_restart(milvus_server) -> None:
    store = VectorStore(milvus_server.uri, timeout=5, alias="restart")
    store.publish(1, movie_vectors())
    milvus_server.stop()
    milvus_server.start()
    assert store.search(movie_vectors().vectors[:1], 1)[0][0].movie_id == 1


@pytest.mark.timeout(120)
def test_a_hung_server_costs_one_timeout_then_reads_fail_at_once_until_the_background_probe_gets_an_answer(
    milvus_server,
) -> None:
    store = VectorStore(milvus_server.uri, timeout=2, alias="breaker", breaker_s=4)
    store.publish(1, movie_vectors())
    query = movie_vectors().vectors[:1]
    os.kill(milvus_server.process.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        with pytest.raises(VectorStoreUnavailable):
            store.search(query, 5)
        first = time.monotonic() - started
        fast = []
        while time.monotonic() - started < 3 * store.breaker_s:  # well past the window: the probe keeps it open
            began = time.monotonic()
            with pytest.raises(VectorStoreUnavailable, match="checked in the background"):
                store.live_collection()
            fast.append(time.monotonic() - began)
            time.sleep(0.1)
        assert "DEADLINE_EXCEEDED" in store.failure() or "still failing" in store.failure()
    finally:
        os.kill(milvus_server.process.pid, signal.SIGCONT)
    # A read that waited on the hung server would take the 2-s timeout; "at once" is far below that, with room
    # for a busy machine (one read took 50.5 ms while the whole suite shared two cores with benchmarks).
    assert first < 4 and max(fast) < 0.5, (first, max(fast))
    deadline = time.monotonic() + 3 * store.breaker_s
    while store.failure():
        assert time.monotonic() < deadline, "the probe never closed the breaker"
        time.sleep(0.2)
    assert store.search(query, 1)[0][0].movie_id == 1


def test_collections_load_with_the_configured_replicas() -> None:
    from recommender.vector_store import VectorStore

    assert VectorStore("http://127.0.0.1:9")._load_options() == {}  # milvus-lite and standalone: one query node
    assert VectorStore("http://127.0.0.1:9", replicas=3)._load_options() == {"replica_number": 3}
