"""What goes live, and what the clean-up keeps, whatever order publishes, staff and clean-ups come in."""

import itertools
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from movies.models import Genre, Movie
from recommender import runs, serving, vectors
from recommender.models import LiveChange, MovieRemoval, TrainingRun
from tests.conftest import requires_milvus
from tests.recommender.test_train_command import TINY_FLAGS, make_ratings

pytestmark = [requires_milvus, pytest.mark.django_db]


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


def _reset(store: object, trained: list[TrainingRun]) -> None:
    """Milvus and the runs' records as just after training, the model files untouched."""
    with store._calls("reset") as client:
        client.drop_alias(store.alias)
        for name in store.run_collections():
            client.drop_collection(name)
    store._fields.clear()
    TrainingRun.objects.filter(id__in=[r.id for r in trained]).update(published_at=None, held_back_reason="")
    LiveChange.objects.all().delete()
    serving.forget_live_run()


def test_two_publishes_and_a_clean_up_in_every_order_leave_the_newer_run_live_with_its_files(
    store, trained_runs: list[TrainingRun]
) -> None:
    older, newer = trained_runs[0], trained_runs[1]
    steps = {
        "publish older": lambda: runs.publish(older.id),
        "publish newer": lambda: runs.publish(newer.id),
        "clean up": runs.drop_old_collections,
    }
    for order in itertools.permutations(steps):
        _reset(store, trained_runs)
        for step in order:
            steps[step]()
        assert runs.live_run_id() == newer.id, order
        kept = store.run_collections()
        assert store.collection_for_run(newer.id) in kept, order
        assert all(Path(r.artifact_path).is_file() for r in TrainingRun.objects.filter(id__in=[older.id, newer.id]))
        if order.index("publish older") < order.index("publish newer"):
            assert store.collection_for_run(older.id) in kept, f"{order}: the rollback target was dropped"
            moves = [(c.from_run_id, c.to_run_id) for c in LiveChange.objects.order_by("id")]
            assert moves == [(None, older.id), (older.id, newer.id)], order
        else:  # the late publish of the older run changed nothing, and says why on the run
            assert "newer, was published first" in TrainingRun.objects.get(id=older.id).held_back_reason, order
            assert [c.to_run_id for c in LiveChange.objects.all()] == [newer.id], order
        assert serving.live_run().id == newer.id


def test_staff_can_put_an_older_run_live_and_it_is_recorded_and_nothing_newer_is_dropped(
    store, trained_runs: list[TrainingRun]
) -> None:
    first, second, third = trained_runs
    operator = get_user_model().objects.create_user("operator", password="x-long-password-9", is_staff=True)
    runs.publish(first.id)
    runs.publish(third.id)
    assert runs.publish(second.id) is None  # late and automatic: the newer run 3 is live
    assert runs.live_run_id() == third.id
    assert f"run {third.id}, newer, was published first" in TrainingRun.objects.get(id=second.id).held_back_reason
    with pytest.raises(runs.Refused, match=f"Run {third.id} is already live; nothing to do."):
        runs.make_live(third.id, operator)
    runs.make_live(second.id, operator)  # staff's explicit choice goes back in time
    assert runs.live_run_id() == second.id
    assert last_move() == ("make_live", third.id, second.id, operator)
    kept = store.run_collections()
    assert [store.run_of_collection(n) for n in kept] == [first.id, second.id, third.id]  # rollback, live, newest
    assert all(Path(r.artifact_path).is_file() for r in TrainingRun.objects.all())
    runs.roll_back(operator)
    assert last_move() == ("roll_back", second.id, first.id, operator)
    runs.drop_old_collections()
    assert store.collection_for_run(third.id) in store.run_collections()


def last_move() -> tuple:
    """The newest move of the alias: (action, from run, to run, by whom)."""
    change = LiveChange.objects.first()
    return change.action, change.from_run_id, change.to_run_id, change.by


def test_roll_back_with_nothing_earlier_says_so_and_changes_nothing(store, trained_runs: list[TrainingRun]) -> None:
    with pytest.raises(runs.Refused, match="no earlier run"):
        runs.roll_back()
    runs.publish(trained_runs[0].id)
    with pytest.raises(runs.Refused, match="no earlier run"):
        runs.roll_back()
    assert runs.live_run_id() == trained_runs[0].id and LiveChange.objects.count() == 1


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


def test_a_run_trained_while_another_is_live_scores_the_live_model_on_its_own_split(
    store, trained_runs: list[TrainingRun]
) -> None:
    runs.publish(trained_runs[0].id)
    call_command("train_recommender", *TINY_FLAGS, "--no-baselines", stdout=StringIO())
    candidate = TrainingRun.objects.order_by("-id").first()
    assert candidate.live_on_split["run"] == trained_runs[0].id
    assert set(candidate.live_on_split["validation"]) >= {"hr@10", "ndcg@10"}


def test_a_movie_deleted_while_a_publish_runs_is_not_in_the_new_collection(
    store, trained_runs: list[TrainingRun], monkeypatch: pytest.MonkeyPatch
) -> None:
    doomed = Movie.objects.order_by("id").last()
    doomed_id = doomed.id
    computed = runs._current_movie_vectors

    def then_deleted(run: TrainingRun) -> object:  # the snapshot is taken, then staff delete a movie
        movies = computed(run)
        Movie.objects.filter(id=doomed_id).delete()
        vectors.note_movies_deleted([doomed_id])
        return movies

    monkeypatch.setattr(runs, "_current_movie_vectors", then_deleted)
    runs.publish(trained_runs[0].id)
    assert doomed_id not in store.get_vectors([doomed_id])
    assert store.count(store.collection_for_run(trained_runs[0].id)) == Movie.objects.count()


def test_a_publish_retried_after_staff_rolled_back_does_not_undo_the_rollback(
    store, trained_runs: list[TrainingRun]
) -> None:
    first, second = trained_runs[0], trained_runs[1]
    runs.publish(first.id)
    runs.publish(second.id)
    runs.roll_back()
    assert runs.publish(second.id) is None  # its message came back (a retry, a redelivery)
    assert runs.live_run_id() == first.id
    assert "published before" in TrainingRun.objects.get(id=second.id).held_back_reason
    assert runs.publish(first.id) == store.collection_for_run(first.id)  # live already: finishes, changes nothing
    assert runs.live_run_id() == first.id and [c.action for c in LiveChange.objects.all()][0] == "roll_back"


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
