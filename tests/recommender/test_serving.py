"""recommender/serving.py: recommendations from Milvus for people and movies, and the co-rated and popular
fallbacks."""

import time

import numpy as np
import pytest
from django.test import Client

from recommender import serving
from recommender.ml import scoring
from recommender.vector_store import MovieVectors, VectorStore
from tests.conftest import requires_milvus


@requires_milvus
@pytest.mark.django_db
def test_recommendations_exclude_rated_movies_and_explain_themselves(alice, live_embeddings, catalogue_movies) -> None:
    result = serving.recommend_movies_for(alice, limit=5)
    assert result.source == serving.Source.PERSONAL and result.note == ""
    ids = [item.movie.id for item in result.items]
    rated = {catalogue_movies[i].id for i in (0, 1, 2, 7)}
    assert ids and not rated & set(ids)
    assert set(ids[:3]) <= {m.id for m in catalogue_movies[3:6]}, "liked Animation should bring more Animation"
    first = result.items[0]
    assert first.because.startswith("Because you liked Robot Garden") and first.shared_genres == ["Animation"]


@requires_milvus
@pytest.mark.django_db
def test_a_new_user_gets_popular_movies_and_a_note(bob, alice, live_embeddings) -> None:
    result = serving.recommend_movies_for(bob, limit=5)
    assert result.source == serving.Source.POPULAR and "Rate a few movies" in result.note
    assert result.items


@pytest.mark.django_db
def test_milvus_down_gives_popular_movies_quickly(alice, catalogue_movies, monkeypatch: pytest.MonkeyPatch) -> None:
    from recommender.models import TrainingRun

    TrainingRun.objects.create(status=TrainingRun.Status.SUCCEEDED)
    monkeypatch.setattr(serving, "_store", VectorStore("http://127.0.0.1:9", timeout=1))
    serving.forget_live_run()
    started = time.monotonic()
    result = serving.recommend_movies_for(alice, limit=5)
    assert time.monotonic() - started < 1  # FAULTS M-1
    assert result.source == serving.Source.POPULAR and "unavailable" in result.note
    assert all(item.movie.id not in {catalogue_movies[i].id for i in (0, 1, 2, 7)} for item in result.items)


@requires_milvus
@pytest.mark.django_db
def test_similar_movies_honour_genre_and_year_filters(live_embeddings, catalogue_movies) -> None:
    result = serving.similar_movies(catalogue_movies[0], limit=5)
    assert [i.movie.id for i in result.items][:5] and catalogue_movies[0].id not in [i.movie.id for i in result.items]
    drama = serving.similar_movies(catalogue_movies[0], limit=5, genre="Drama", year_from=1999)
    assert {i.movie.year >= 1999 and i.movie.genres.first().name == "Drama" for i in drama.items} == {True}


@requires_milvus
@pytest.mark.django_db
def test_stored_neighbour_lists_give_the_same_picks_without_searching(
    alice, live_embeddings, catalogue_movies, store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataclasses import replace

    from recommender.models import TrainingRun
    from recommender.vectors import nearest_movies

    searched = serving.recommend_movies_for(alice, limit=5)
    ids = store.get_vectors([m.id for m in catalogue_movies])
    movie_ids = np.array(sorted(ids))
    vectors = np.stack([ids[m] for m in movie_ids])
    neighbors, scores = nearest_movies(movie_ids, vectors)
    run = TrainingRun.objects.create(status=TrainingRun.Status.SUCCEEDED, config=live_embeddings.config)
    published = MovieVectors(movie_ids, vectors, np.zeros(len(movie_ids), dtype=np.int32), [[] for _ in movie_ids])
    store.publish(run.id, replace(published, neighbors=neighbors, neighbor_scores=scores))
    serving.forget_live_run()

    def no_search(*args: object, **kwargs: object) -> None:
        raise AssertionError("a page with stored neighbour lists must not search")

    monkeypatch.setattr(store, "search", no_search)
    stored = serving.recommend_movies_for(alice, limit=5)
    assert stored.source == serving.Source.PERSONAL
    assert [i.movie.id for i in stored.items] == [i.movie.id for i in searched.items]
    assert [i.because for i in stored.items] == [i.because for i in searched.items]


@pytest.mark.django_db
@pytest.mark.timeout(60)
def test_a_hung_milvus_costs_one_page_its_timeout_and_the_next_pages_nothing(
    alice, catalogue_movies, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    from recommender.models import TrainingRun

    TrainingRun.objects.create(status=TrainingRun.Status.SUCCEEDED)
    listener = socket.socket()  # accepts and never answers, like a SIGSTOPped Milvus
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    monkeypatch.setattr(
        serving, "_store", VectorStore(f"http://127.0.0.1:{listener.getsockname()[1]}", timeout=1, breaker_s=30)
    )
    serving.forget_live_run()
    try:
        timings = []
        for _ in range(6):
            serving.forget_live_run()  # as if each page came after the live-run cache expired
            started = time.monotonic()
            result = serving.recommend_movies_for(alice, limit=5)
            timings.append(time.monotonic() - started)
            assert result.source == serving.Source.POPULAR and "unavailable" in result.note
    finally:
        listener.close()
    assert timings[0] < 3 and max(timings[1:]) < 0.5, timings


@pytest.mark.django_db
def test_a_pick_is_credited_to_the_liked_movie_nearest_to_it_or_to_none(catalogue_movies) -> None:
    from recommender.models import TrainingRun

    run = TrainingRun.objects.create(status=TrainingRun.Status.SUCCEEDED)
    hub, pick, other, fan, lone = (m.id for m in catalogue_movies[:5])

    class Lists:  # the hub lists every pick among its neighbours; the picks' own nearest movies say otherwise
        def has_neighbor_lists(self, collection: str) -> bool:
            return True

        def collection_for_run(self, run_id: int) -> str:
            return f"movies_run{run_id}"

        def get_neighbors(self, movie_ids: list[int]) -> dict:
            lists = {pick: [other, fan, hub], other: [lone, catalogue_movies[9].id]}
            return {m: (np.array(lists[m]), np.ones(len(lists[m]), dtype=np.float32)) for m in movie_ids if m in lists}

    picks = [(1.0, pick, hub), (0.9, other, hub), (0.8, catalogue_movies[8].id, hub)]
    credited = serving._credible(Lists(), run.id, picks, liked=[hub, fan], n=2)
    # pick: fan is nearer to it than the hub (beyond its 2 nearest); other: no liked movie among its nearest;
    # the last has no stored list (added since the publish) and keeps its contributor.
    assert credited == [(1.0, pick, fan), (0.9, other, -1), (0.8, catalogue_movies[8].id, hub)]
    items = serving._explained(credited[:2], liked=[hub, fan])
    assert items[0].because == f"Because you liked {catalogue_movies[3].display_title}"
    assert items[1].because == "Shares Animation with movies you liked" and items[1].because_movie is None
    unrelated = serving._explained([(1.0, catalogue_movies[10].id, -1)], liked=[hub])
    assert unrelated[0].because == ""  # no liked movie near it, no shared genre: nothing is said


@requires_milvus
@pytest.mark.django_db
def test_the_diversity_setting_trades_the_next_same_genre_pick_for_another_genre_and_off_changes_nothing(
    alice, live_embeddings, catalogue_movies, settings
) -> None:
    settings.RECOMMENDATION_DIVERSITY_PERCENT = 0
    served = [i.movie.id for i in serving.recommend_movies_for(alice, limit=3).items]
    assert set(served) == {m.id for m in catalogue_movies[3:6]}  # she loves Animation: the three left, all Animation
    settings.RECOMMENDATION_DIVERSITY_PERCENT = 90
    varied = [i.movie for i in serving.recommend_movies_for(alice, limit=3).items]
    assert varied[0].id == served[0]  # the most relevant pick stays first
    assert {g.name for m in varied for g in m.genres.all()} == {"Animation", "Drama"}


@requires_milvus
@pytest.mark.django_db
def test_before_any_model_is_live_picks_come_from_co_rated_movies_and_say_so(
    alice, catalogue_movies, co_raters, store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(serving, "_store", store)  # Milvus answers; no collection is live under its alias
    serving.forget_live_run()
    result = serving.recommend_movies_for(alice, limit=5)
    assert result.source == serving.Source.CO_RATED and "first model is still training" in result.note
    ids = [item.movie.id for item in result.items]
    # Three liked Animation movies outweigh one disliked Drama, though it was rated last.
    assert ids[:2] and set(ids[:2]) <= {m.id for m in catalogue_movies[3:6]}, "liked Animation brings Animation"
    assert not {catalogue_movies[i].id for i in (0, 1, 2, 7)} & set(ids)
    assert result.items[0].because.startswith("Because you liked Robot Garden")
    similar = serving.similar_movies(catalogue_movies[0], limit=8)
    assert similar.source == serving.Source.CO_RATED and "From ratings alone" in similar.note
    # Alice's ratings tie one Drama to it too, behind the five Animation movies rated by the same people.
    assert {i.movie.id for i in similar.items[:5]} == {m.id for m in catalogue_movies[1:6]}
    drama = serving.similar_movies(catalogue_movies[9], limit=8, genre="Animation")  # rated by Drama fans alone
    assert drama.items == [] and "match these filters" in drama.note


@pytest.mark.django_db
def test_milvus_down_gives_co_rated_picks_where_the_catalogue_has_them(
    alice, catalogue_movies, co_raters, monkeypatch: pytest.MonkeyPatch
) -> None:
    from recommender.models import TrainingRun

    TrainingRun.objects.create(status=TrainingRun.Status.SUCCEEDED)
    monkeypatch.setattr(serving, "_store", VectorStore("http://127.0.0.1:9", timeout=1))
    serving.forget_live_run()
    started = time.monotonic()
    result = serving.recommend_movies_for(alice, limit=5)
    similar = serving.similar_movies(catalogue_movies[0], limit=5)
    assert time.monotonic() - started < 2
    assert result.source == serving.Source.CO_RATED and "unavailable for a moment" in result.note
    assert similar.source == serving.Source.CO_RATED and len(similar.items) == 5


@requires_milvus
@pytest.mark.django_db
def test_more_like_this_blends_the_models_nearest_with_co_rated_movies_exactly_as_bench_similar_scores(
    alice, live_embeddings, catalogue_movies, co_raters, store
) -> None:
    from movies.models import CoRatedMovie
    from recommender.ml import corating

    movie = catalogue_movies[0]
    ids = [m.id for m in catalogue_movies]
    vectors = store.get_vectors(ids)
    model = np.array([vectors[i] @ vectors[movie.id] for i in ids])
    cosine = dict(CoRatedMovie.objects.filter(movie=movie).values_list("neighbour_id", "score"))
    blended = corating.blended_similarity(model, np.array([cosine.get(i, 0.0) for i in ids]))
    expected = [ids[i] for i in np.lexsort((ids, -blended)) if ids[i] != movie.id][:6]
    result = serving.similar_movies(movie, limit=6)
    assert result.source == serving.Source.PERSONAL
    assert [item.movie.id for item in result.items] == expected
    assert [round(item.score, 5) for item in result.items] == [round(float(blended[ids.index(i)]), 5) for i in expected]


def test_a_pick_is_credited_to_the_liked_movie_first_in_its_own_list_not_to_the_largest_contributor() -> None:
    picks = [(0.9, 10, 1), (0.8, 11, 1), (0.7, 12, 1), (0.6, 13, 1)]  # movie 1, rated last, contributed most to all
    lists = {10: [5, 1, 2], 11: [7, 8, 2, 1], 12: [7, 8, 9], 13: []}
    credited = scoring.credited(picks, liked=[1, 2], lists=lists)
    # 10: its own list has 1 before 2; 11: 2 comes first; 12: none of the liked movies is near it; 13: no list.
    assert [source for _, _, source in credited] == [1, 2, -1, 1]


@pytest.mark.django_db
def test_the_popular_fallback_reads_stored_statistics_not_the_ratings_table(
    client: Client, alice, catalogue_movies, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from recommender import serving
    from recommender.models import TrainingRun
    from recommender.vector_store import VectorStore

    TrainingRun.objects.create(status=TrainingRun.Status.SUCCEEDED)
    monkeypatch.setattr(serving, "_store", VectorStore("http://127.0.0.1:9", timeout=1))  # an outage
    serving.forget_live_run()
    client.force_login(alice)
    with CaptureQueriesContext(connection) as queries:
        page = client.get("/for-you/")
    assert page.status_code == 200 and "unavailable" in page.content.decode()
    # One user's own ratings (an index range) are fine; an aggregate across everyone's is the scan to avoid.
    grouped = [
        q["sql"]
        for q in queries
        if "movies_rating" in q["sql"]
        and "user_id" not in q["sql"].split("WHERE")[-1]
        and any(f in q["sql"].upper() for f in ("COUNT(", "AVG(", "SUM(", "GROUP BY"))
    ]
    assert not grouped, grouped
