"""Movie vectors between trainings: the lease on the Milvus collections, a new or edited movie's vector from the
live model, deleted movies leaving Milvus, each movie's stored neighbour list, and the sweep that resends lost
vector work. A training run's own publish (recommender.runs) writes through the same lease."""

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from movies import selectors
from movies.models import Movie
from recommender import outbox, serving
from recommender.ml.scoring import top_neighbors
from recommender.models import MovieRemoval, RecommenderState, TrainingRun
from recommender.vector_store import NEIGHBORS, MovieVectors, VectorStoreUnavailable

if TYPE_CHECKING:
    from recommender.ml.artifact import ModelArtifact
    from recommender.ml.data import Catalogue
    from recommender.ml.pinsage import PinSageNetwork

NEIGHBOR_LISTS_MAX_MOVIES = 100_000  # all pairs: 100k x 100k x 128 multiply-adds, some 30 s of BLAS
RESYNC_BATCH = 1000


class VectorsBusy(Exception):
    """Another publish, rollback or clean-up holds the vector lease; try again shortly."""


@contextmanager
def vector_lease(what: str, seconds: int | None = None) -> Iterator[None]:
    """Holds the one lease on Milvus collections while `what` runs: two publishes of one run, or a clean-up
    during a publish, can no longer drop each other's collection. A claimed row, not a Redis lock, so it
    works on every broker; it expires by itself when its holder dies (after the task's hard limit)."""
    token = uuid.uuid4().hex
    now = timezone.now()
    until = now + timedelta(seconds=seconds or settings.TASK_TIME_LIMIT_S)
    state = RecommenderState.current()
    free = Q(vector_lock_until__isnull=True) | Q(vector_lock_until__lt=now)
    if not RecommenderState.objects.filter(free, id=state.id).update(vector_lock_token=token, vector_lock_until=until):
        raise VectorsBusy(f"{what} waits: another change to the Milvus collections is under way")
    try:
        yield
    finally:
        RecommenderState.objects.filter(id=state.id, vector_lock_token=token).update(vector_lock_until=None)


def note_movie_changed(movie_id: int) -> None:
    """A new or edited movie gets its vector from the live model after commit, without a retrain."""
    transaction.on_commit(lambda: outbox.send_soon(outbox.EMBED_MOVIE, movie_id))


def note_movies_deleted(movie_ids: list[int]) -> None:
    """Deleted movies leave Milvus: a removal row in the caller's transaction, then a task after commit. The row
    stays until Milvus confirms, so the sweeper resends a removal whose message or call was lost."""
    ids = sorted({int(i) for i in movie_ids})
    if not ids:
        return
    existing = set(MovieRemoval.objects.filter(movie_id__in=ids).values_list("movie_id", flat=True))
    MovieRemoval.objects.bulk_create([MovieRemoval(movie_id=i) for i in ids if i not in existing])
    transaction.on_commit(lambda: outbox.send_soon(outbox.REMOVE_MOVIES, ids))


def embed_movie(movie_id: int, run: TrainingRun | None = None) -> bool:
    """Gives a new or edited movie its vector from `run`'s model (default: the live run) in that run's own
    collection, without retraining. Written by run, never through the alias: if another run went live since,
    its publish re-embeds the movie with its own model (vectors_catch_up)."""
    from recommender.ml.embeddings import cold_start_embeddings  # torch and dgl: never loaded by web processes
    from recommender.ml.features import build_movie_features  # torch: never loaded by web processes

    run = run or serving.live_run()
    catalogue = selectors.movie_catalogue([movie_id])
    if run is None or not len(catalogue.movie_ids):
        return False
    network, artifact = live_network(run)
    row = artifact.row_of(movie_id)
    if row is not None:  # trained on it: keep the learned vector, refresh the filterable fields
        vector = artifact.embeddings[row][None, :]
    else:
        features = build_movie_features(
            catalogue.titles,
            catalogue.years,
            catalogue.genres,
            vocabulary=artifact.vocabulary,
            genre_names=artifact.genre_names,
            tags=catalogue.tags_of([0]) if artifact.training_config().use_tags else None,
        )
        vector = cold_start_embeddings(network, features)
    store = serving.vector_store()
    # Its own nearest movies come from one search; other movies' stored lists learn of it at the next publish.
    found = store.search(vector, NEIGHBORS + 1, collection=store.collection_for_run(run.id))[0]
    hits = [h for h in found if h.movie_id != movie_id][:NEIGHBORS]
    store.upsert_movies(
        run.id,
        MovieVectors(
            catalogue.movie_ids,
            vector,
            np.array([catalogue.years[0] or 0], dtype=np.int32),
            catalogue.genres,
            np.array([[h.movie_id for h in hits]], dtype=np.int64),
            np.array([[h.score for h in hits]], dtype=np.float32),
        ),
    )
    return True


def vectors_catch_up(run: TrainingRun, published: MovieVectors, snapshot_at: datetime) -> None:
    """What the catalogue did while `run`'s collection was being written, applied to it once it is live:
    movies deleted since the snapshot leave it, movies added or edited since get their vector from its model."""
    now = set(Movie.objects.values_list("id", flat=True))
    gone = [int(m) for m in published.movie_ids if int(m) not in now]
    if gone:
        serving.vector_store().delete_movies(gone, serving.vector_store().collection_for_run(run.id))
    missing = now - {int(m) for m in published.movie_ids}
    edited = set(Movie.objects.filter(updated_at__gte=snapshot_at).values_list("id", flat=True))
    for movie_id in sorted(missing | edited):
        embed_movie(movie_id, run)


def remove_movies(movie_ids: list[int]) -> None:
    """Deleted movies leave every run collection Milvus keeps (the live one, and those a rollback or staff could
    put live again); their removal rows go once Milvus has confirmed each delete."""
    ids = [int(i) for i in movie_ids]
    if not ids:
        return
    still_there = set(Movie.objects.filter(id__in=ids).values_list("id", flat=True))  # a rolled-back delete
    ids = [i for i in ids if i not in still_there]
    store = serving.vector_store()
    if not ids:
        return
    # Under the lease: a collection a publish is still writing would come out one short of its count and fail
    # its checks; that publish removes what was deleted meanwhile itself (vectors_catch_up).
    with vector_lease("removing deleted movies"):
        for name in store.run_collections():
            store.delete_movies(ids, name)
    MovieRemoval.objects.filter(movie_id__in=ids).delete()
    serving.forget_live_run()


def resend_removals() -> int:
    """Removals not confirmed within a sweep period (a lost message, Milvus down past the task's retries)."""
    stale = timezone.now() - timedelta(seconds=settings.RETRAIN_RESEND_AFTER_S)
    pending = MovieRemoval.objects.filter(Q(sent_at__isnull=True) | Q(sent_at__lt=stale), deleted_at__lt=stale)
    ids = list(pending.values_list("movie_id", flat=True)[:RESYNC_BATCH])
    if not ids or not outbox.send(outbox.REMOVE_MOVIES, ids):
        return 0
    MovieRemoval.objects.filter(movie_id__in=ids).update(sent_at=timezone.now())
    return len(ids)


def resync_movie_vectors() -> int:
    """Movies added or edited since the last sweep get their vector again (embed_movie is an idempotent upsert),
    so a message lost while Redis was down costs at most one sweep period."""
    state = RecommenderState.current()
    now = timezone.now()
    try:
        run = serving.live_run()
    except VectorStoreUnavailable:  # Milvus down: try again next sweep, from the same point
        return 0
    if run is None:
        return 0
    since = state.vectors_synced_at or run.published_at
    if since is None:
        return 0
    edited = list(
        Movie.objects.filter(updated_at__gte=since)
        .order_by("updated_at", "id")
        .values_list("id", "updated_at")[:RESYNC_BATCH]
    )
    sent = sum(outbox.send(outbox.EMBED_MOVIE, movie_id) for movie_id, _ in edited)
    if sent == len(edited):  # all sent: next time from here (a full batch: from its last edit, to go on)
        mark = edited[-1][1] if len(edited) == RESYNC_BATCH else now
        RecommenderState.objects.filter(id=state.id).update(vectors_synced_at=mark)
    return sent


def nearest_movies(
    movie_ids: npt.NDArray[np.int64], vectors: npt.NDArray[np.float32]
) -> tuple[npt.NDArray[np.int64] | None, npt.NDArray[np.float32] | None]:
    """Each movie's exact nearest movies (ids, inner products), stored with it so a page needs no search; None
    beyond NEIGHBOR_LISTS_MAX_MOVIES, where the all-pairs product gets slow and pages search instead."""
    if len(movie_ids) < 2 or len(movie_ids) > NEIGHBOR_LISTS_MAX_MOVIES:
        return None, None
    indices, scores = top_neighbors(vectors, NEIGHBORS)  # (num_movies, <= NEIGHBORS) each
    return movie_ids[indices], scores


_network_cache: dict[int, tuple["PinSageNetwork", "ModelArtifact"]] = {}


def live_network(run: TrainingRun) -> tuple["PinSageNetwork", "ModelArtifact"]:
    """The live run's network and artifact, loaded once per process."""
    from recommender.ml.artifact import ModelArtifact  # torch: never loaded by web processes
    from recommender.ml.features import build_movie_features  # torch: never loaded by web processes
    from recommender.ml.pinsage import PinSageNetwork  # torch: never loaded by web processes

    if run.id not in _network_cache:
        artifact = ModelArtifact.load(run.artifact_path)
        config = artifact.training_config()
        # Rows in the artifact's order, one per trained movie, deleted ones included (with empty features):
        # the id embedding has one row per trained movie, and a deletion must not change its shape.
        current = selectors.movie_catalogue(artifact.movie_ids.tolist())
        found = {int(m): i for i, m in enumerate(current.movie_ids)}
        at = [found.get(int(m)) for m in artifact.movie_ids]
        features = build_movie_features(
            [current.titles[i] if i is not None else "" for i in at],
            [current.years[i] if i is not None else None for i in at],
            [current.genres[i] if i is not None else [] for i in at],
            vocabulary=artifact.vocabulary,
            genre_names=artifact.genre_names,
            tags=current.tags_of(at) if config.use_tags else None,
        )
        network = PinSageNetwork(
            features, config.hidden_dim, config.walk.num_layers, config.dropout, config.use_id_embedding
        )
        network.load_state_dict(artifact.state_dict)
        _network_cache.clear()
        _network_cache[run.id] = (network, artifact)
    return _network_cache[run.id]


def cold_start_vectors(
    run: TrainingRun, catalogue: "Catalogue", positions: npt.NDArray[np.intp]
) -> npt.NDArray[np.float32]:
    """Features-only vectors (as new movies get) for the catalogue rows at `positions`."""
    from recommender.ml.embeddings import cold_start_embeddings  # torch and dgl: never loaded by web processes
    from recommender.ml.features import build_movie_features  # torch: never loaded by web processes

    network, artifact = live_network(run)
    features = build_movie_features(
        [catalogue.titles[i] for i in positions],
        [catalogue.years[i] for i in positions],
        [catalogue.genres[i] for i in positions],
        vocabulary=artifact.vocabulary,
        genre_names=artifact.genre_names,
        tags=catalogue.tags_of(list(positions)) if artifact.training_config().use_tags else None,
    )
    return cold_start_embeddings(network, features)
