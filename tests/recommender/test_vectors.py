"""recommender/vectors.py, the movie vectors between retrainings: a new or edited movie's vector from the live
model, a deleted movie's removal from Milvus, the lease that lets one change to the collections run at a time,
and the resends of lost vector work that the beat sweeper runs."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from movies.models import Genre, Movie
from recommender import runs, serving, tasks, vectors
from recommender.models import MovieRemoval, RecommenderState, TrainingRun
from tests.conftest import requires_milvus
from tests.recommender.conftest import succeeded_run

pytestmark = pytest.mark.django_db


@requires_milvus
def test_a_new_movie_becomes_searchable_without_retraining(store, trained) -> None:
    runs.publish(trained.id)
    movie = Movie.objects.create(title="Brand New Film (2026)", year=2026)
    movie.genres.add(Genre.objects.create(name="Sci-Fi"))
    assert vectors.embed_movie(movie.id)
    assert movie.id in store.get_vectors([movie.id])
    near, _ = store.get_neighbors([movie.id])[movie.id]
    assert len(near) == 25 and movie.id not in near.tolist()  # its own list, from one search
    similar = serving.similar_movies(movie, limit=5)
    assert len(similar.items) == 5 and movie.id not in [i.movie.id for i in similar.items]
    hits = store.search(store.get_vectors([movie.id])[movie.id][None, :], 1, "year >= 2026")[0]
    assert hits[0].movie_id == movie.id
    serving.forget_live_run()


@requires_milvus
def test_a_new_movies_vector_goes_to_the_run_that_computed_it_and_the_next_publish_re_embeds_it(
    store, trained_runs: list[TrainingRun], monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = trained_runs[0], trained_runs[1]
    runs.publish(first.id)
    movie = Movie.objects.create(title="Added Mid Publish (2026)", year=2026)
    movie.genres.add(Genre.objects.create(name="Sci-Fi"))
    # embed_movie saw run 1 live, then run 2's publish (whose snapshot predates the movie) went live first.
    computed_by = serving.live_run()
    real_catalogue = runs.selectors.movie_catalogue

    def catalogue_before_the_movie(movie_ids: list[int] | None = None) -> object:
        return (
            real_catalogue(movie_ids)
            if movie_ids
            else real_catalogue(list(Movie.objects.exclude(id=movie.id).values_list("id", flat=True)))
        )

    with monkeypatch.context() as patched:
        patched.setattr(runs.selectors, "movie_catalogue", catalogue_before_the_movie)
        runs.publish(second.id)
    assert vectors.embed_movie(movie.id, computed_by)
    with store._calls("read tags") as client:
        rows = client.query(
            store.collection_for_run(second.id), filter=f"movie_id == {movie.id}", output_fields=["run_id"]
        )
        old = client.query(
            store.collection_for_run(first.id), filter=f"movie_id == {movie.id}", output_fields=["run_id"]
        )
    assert [r["run_id"] for r in rows] == [second.id], "the live collection holds the movie from its own model"
    assert [r["run_id"] for r in old] == [first.id]


@requires_milvus
def test_a_deleted_movie_leaves_every_page_at_once_and_milvus_until_it_confirms(
    store, trained_runs: list[TrainingRun], alice_of_trained: object, django_capture_on_commit_callbacks: object
) -> None:
    from movies.admin import MovieAdmin

    runs.publish(trained_runs[0].id)
    before = serving.recommend_movies_for(alice_of_trained, limit=5)
    assert before.source == serving.Source.PERSONAL and len(before.items) == 5
    doomed = before.items[0].movie
    near = serving.similar_movies(Movie.objects.exclude(id=doomed.id).first(), limit=5)
    with django_capture_on_commit_callbacks(execute=False):  # the removal message is lost
        MovieAdmin(Movie, None).delete_queryset(None, Movie.objects.filter(id=doomed.id))
    assert MovieRemoval.objects.filter(movie_id=doomed.id).exists()
    after = serving.recommend_movies_for(alice_of_trained, limit=5)
    assert len(after.items) == 5 and doomed.id not in [i.movie.id for i in after.items]
    similar = serving.similar_movies(Movie.objects.exclude(id=doomed.id).first(), limit=5)
    assert len(similar.items) == len(near.items) == 5 and doomed.id not in [i.movie.id for i in similar.items]
    assert doomed.id in store.get_vectors([doomed.id])  # still in Milvus: its message never went
    vectors.remove_movies([doomed.id])  # what the sweeper's resend runs
    assert doomed.id not in store.get_vectors([doomed.id]) and not MovieRemoval.objects.exists()


@pytest.fixture
def alice_of_trained(trained_runs: list[TrainingRun]) -> object:
    """The trained ratings' first user, with a few high ratings so the page is personal."""
    from movies.models import Rating

    user = get_user_model().objects.get(username="u0")
    Rating.objects.filter(user=user).update(stars=5)
    return user


@requires_milvus
def test_a_removal_waits_while_a_publish_holds_the_collections(store, trained_runs: list[TrainingRun]) -> None:
    runs.publish(trained_runs[0].id)
    doomed = Movie.objects.order_by("id").first()
    doomed_id = doomed.id
    doomed.delete()
    vectors.note_movies_deleted([doomed_id])
    with vectors.vector_lease("publishing run 9"):
        with pytest.raises(vectors.VectorsBusy):
            vectors.remove_movies([doomed_id])
    assert doomed_id in store.get_vectors([doomed_id])
    vectors.remove_movies([doomed_id])
    assert doomed_id not in store.get_vectors([doomed_id]) and not MovieRemoval.objects.exists()


def test_movie_vectors_lost_while_the_broker_was_down_are_resent_once(
    sent: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    live = succeeded_run(30, published_at=timezone.now() - timedelta(minutes=20))
    monkeypatch.setattr(serving, "live_run", lambda: live)
    before = Movie.objects.create(title="Published With The Run (2001)")
    Movie.objects.filter(id=before.id).update(updated_at=timezone.now() - timedelta(minutes=25))
    added = Movie.objects.create(title="Added While Redis Was Down (2026)")  # its embed_movie message was lost
    tasks.sweep()
    assert sent["embed_movie"] == [added.id]
    tasks.sweep()
    assert sent["embed_movie"] == [added.id], "a later sweep starts where the last one ended"
    edited = Movie.objects.get(id=before.id)
    edited.title = "Published With The Run, Renamed (2001)"
    edited.save()
    tasks.sweep()
    assert sent["embed_movie"] == [added.id, before.id]
    assert RecommenderState.current().vectors_synced_at is not None


def test_a_deleted_movies_removal_is_resent_until_milvus_confirms(
    sent: dict, settings: object, django_capture_on_commit_callbacks: object
) -> None:
    from recommender import vectors
    from recommender.models import MovieRemoval

    settings.RETRAIN_RESEND_AFTER_S = 300
    movie = Movie.objects.create(title="Deleted While Redis Was Down (2026)")
    with django_capture_on_commit_callbacks(execute=False):  # its message was lost with the broker
        movie_id = movie.id
        movie.delete()
        vectors.note_movies_deleted([movie_id])
    tasks.sweep()
    assert sent["remove_movies"] == [], "a fresh removal's own message may still be on its way"
    MovieRemoval.objects.update(deleted_at=timezone.now() - timedelta(minutes=10))
    tasks.sweep()
    tasks.sweep()
    assert sent["remove_movies"] == [[movie_id]]
    MovieRemoval.objects.update(sent_at=timezone.now() - timedelta(minutes=10))  # Milvus never confirmed
    tasks.sweep()
    assert sent["remove_movies"] == [[movie_id], [movie_id]]


def test_one_change_to_the_collections_at_a_time(db, settings: object) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from recommender import vectors
    from recommender.models import RecommenderState

    with vectors.vector_lease("publishing run 1"):
        with pytest.raises(vectors.VectorsBusy, match="dropping old collections waits"):
            with vectors.vector_lease("dropping old collections"):
                pass
    with vectors.vector_lease("after the first ended"):
        pass
    # A holder that died leaves a lease that expires by itself.
    RecommenderState.objects.filter(id=RecommenderState.current().id).update(
        vector_lock_token="dead", vector_lock_until=timezone.now() - timedelta(seconds=1)
    )
    with vectors.vector_lease("after the dead holder's lease expired"):
        pass
