"""Recommender services: train a run, evaluate it, keep its artifact; the seam between Django and the ML modules."""

import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from movies import selectors
from recommender.models import TrainingRun

if TYPE_CHECKING:
    from recommender.ml.artifact import ModelArtifact

logger = logging.getLogger(__name__)
NEIGHBOR_LISTS_MAX_MOVIES = 100_000  # all pairs: 100k x 100k x 128 multiply-adds, some 30 s of BLAS


def create_training_run(config: dict, requested_by: object | None = None) -> TrainingRun:
    """A run for the command line: the pipeline's config under the given overrides. It trains on every
    rating there is now, so the changes counted so far are consumed and the pipeline does not queue
    a second run for them."""
    from recommender.models import RecommenderState

    with transaction.atomic():
        RecommenderState.current()
        RecommenderState.objects.filter(id=1).update(num_changes=0)
        return TrainingRun.objects.create(
            config={**settings.RECOMMENDER_TRAINING_CONFIG, **config}, requested_by=requested_by, reason="command line"
        )


def train_model(
    run_id: int, on_epoch: Callable[[dict], None] | None = None, with_baselines: bool = True
) -> TrainingRun | None:
    """Claims a queued run, trains and evaluates it, saves the artifact; None when another worker has it."""
    claimed = TrainingRun.objects.filter(id=run_id, status=TrainingRun.Status.QUEUED).update(
        status=TrainingRun.Status.RUNNING, started_at=timezone.now(), attempts=F("attempts") + 1
    )
    if not claimed:
        return None
    run = TrainingRun.objects.get(id=run_id)
    try:
        _train(run, on_epoch, with_baselines)
    except Exception as error:
        from recommender.ml.experiment import NotEnoughData

        _drop_broken_connection()
        from celery.exceptions import SoftTimeLimitExceeded

        if isinstance(error, SoftTimeLimitExceeded):
            reason = f"timed out after {settings.TRAINING_SOFT_TIME_LIMIT_S} s"
        else:
            reason = str(error) if isinstance(error, NotEnoughData) else f"{type(error).__name__}: {error}"
        TrainingRun.objects.filter(id=run_id).update(
            status=TrainingRun.Status.FAILED, failure_reason=reason, finished_at=timezone.now()
        )
        if not isinstance(error, NotEnoughData):
            logger.exception("training run %s failed", run_id)
    return TrainingRun.objects.get(id=run_id)


def _drop_broken_connection() -> None:
    """A killed database connection must not fail the status update that records the failure."""
    if connection.connection is not None and not connection.in_atomic_block and not connection.is_usable():
        connection.close()


def _train(run: TrainingRun, on_epoch: Callable[[dict], None] | None, with_baselines: bool) -> None:
    import torch

    from recommender.ml import experiment
    from recommender.ml.training import TrainingConfig

    config = TrainingConfig.from_dict({**TrainingConfig().as_dict(), **run.config})
    if config.device == "auto":
        config = TrainingConfig.from_dict(
            {**config.as_dict(), "device": "cuda" if torch.cuda.is_available() else "cpu"}
        )
    interactions = selectors.ratings_for_training()  # the snapshot this run trains on, whatever arrives later
    catalogue = selectors.movie_catalogue()
    prepared = experiment.prepare(interactions, catalogue, config)
    TrainingRun.objects.filter(id=run.id).update(
        num_users=prepared.split.num_users,
        num_movies=len(catalogue.movie_ids),
        num_ratings=len(interactions),
        device=config.device,
        config=config.as_dict(),
    )

    def record_epoch(record: object) -> None:
        row = {
            "epoch": record.epoch,
            "loss": record.loss,
            "seconds": record.seconds,
            "batches_per_second": record.batches_per_second,
            "validation": record.validation,
            "learning_rate": record.learning_rate,
        }
        run.history.append(row)
        TrainingRun.objects.filter(id=run.id).update(history=run.history)
        if on_epoch:
            on_epoch(row)

    from recommender.ml.experiment import RUN_BASELINE_GRIDS

    # EASE covers the 15k most-rated movies on larger catalogues (ml.evaluation), so it always runs.
    baselines = experiment.fit_baselines(prepared.split, RUN_BASELINE_GRIDS) if with_baselines else {}
    outcome = experiment.fit_pinsage(prepared, config, record_epoch)
    artifact = save_artifact(run.id, outcome, prepared, replace(config, scoring=outcome.scoring))
    config = replace(config, scoring=outcome.scoring)
    TrainingRun.objects.filter(id=run.id).update(
        status=TrainingRun.Status.SUCCEEDED,
        finished_at=timezone.now(),
        best_epoch=outcome.result.best_epoch,
        config=config.as_dict(),
        seconds_to_best=outcome.result.seconds_to_best,
        validation_metrics=outcome.validation,
        test_metrics=outcome.test,
        baseline_metrics=baselines,
        artifact_path=str(artifact),
    )


def save_artifact(run_id: int, outcome: object, prepared: object, config: object) -> Path:
    """Weights, config, node map and the published embeddings in one file per run."""
    from recommender.ml.artifact import ModelArtifact

    return ModelArtifact(
        state_dict=outcome.result.network.state_dict(),
        config=config.as_dict(),
        movie_ids=prepared.full_graph.movie_ids,
        vocabulary=prepared.features.vocabulary,
        genre_names=prepared.features.genre_names,
        embeddings=outcome.embeddings,
    ).save(Path(settings.ARTIFACTS_DIR) / f"run-{run_id}.pt")


def load_artifact(run: TrainingRun) -> "ModelArtifact":
    from recommender.ml.artifact import ModelArtifact

    return ModelArtifact.load(run.artifact_path)


def publish_embeddings(run_id: int) -> str:
    """Publishes a succeeded run's embeddings to a new collection and makes it live; safe to retry."""
    import numpy as np

    from recommender.serving import forget_live_run, record_live_run, vector_store
    from recommender.vector_store import MovieVectors

    run = TrainingRun.objects.get(id=run_id)
    if run.status != TrainingRun.Status.SUCCEEDED:
        raise ValueError(f"training run {run_id} has not succeeded; only a succeeded run can be published")
    if not run.artifact_path or not Path(run.artifact_path).is_file():
        raise ValueError(
            f"training run {run_id}'s model file is gone (the clean-up keeps the live run, its "
            f"rollback and the {KEEP_UNPUBLISHED_ARTIFACTS} newest unpublished runs); retrain instead"
        )
    artifact = load_artifact(run)
    catalogue = selectors.movie_catalogue()  # every movie that exists now, sorted by id
    trained = dict(zip(artifact.movie_ids.tolist(), range(len(artifact.movie_ids))))
    # Movies deleted since training are left out; movies added since get their features-only vector.
    rows = [trained.get(int(m), -1) for m in catalogue.movie_ids]
    vectors = np.zeros((len(rows), artifact.embeddings.shape[1]), dtype=np.float32)
    known = np.array([r >= 0 for r in rows], dtype=bool)
    vectors[known] = artifact.embeddings[[r for r in rows if r >= 0]]
    if (~known).any():
        vectors[~known] = _cold_start_vectors(run, catalogue, np.flatnonzero(~known))
    neighbors, scores = nearest_movies(catalogue.movie_ids, vectors)
    movies = MovieVectors(
        catalogue.movie_ids,
        vectors,
        np.array([y or 0 for y in catalogue.years], dtype=np.int32),
        catalogue.genres,
        neighbors,
        scores,
    )
    from recommender.pipeline import vector_lease

    store = vector_store()
    with vector_lease(f"publishing run {run.id}"):
        name = store.publish(run.id, movies)
        TrainingRun.objects.filter(id=run.id).update(published_at=timezone.now())
        record_live_run(run)
        forget_live_run()
        store.drop_old_collections(keep=2)
    drop_old_artifacts()
    return name


KEEP_UNPUBLISHED_ARTIFACTS = 3  # held-back runs staff may still make live


def drop_old_artifacts() -> list[int]:
    """Deletes the artifact files of runs that can no longer go live or be rolled back to: kept are the runs
    whose collection still exists (the live one and its rollback), the newest succeeded runs that never went
    live, and any run still queued or running. Returns the runs whose artifact was removed."""
    from recommender.serving import vector_store

    store = vector_store()
    with_collection = {store.run_of_collection(name) for name in store.run_collections()}
    unpublished = list(
        TrainingRun.objects.succeeded()
        .filter(published_at__isnull=True)
        .order_by("-id")
        .values_list("id", flat=True)[:KEEP_UNPUBLISHED_ARTIFACTS]
    )
    keep = with_collection | set(unpublished) | set(TrainingRun.objects.active().values_list("id", flat=True))
    dropped = []
    for run in TrainingRun.objects.exclude(artifact_path="").exclude(id__in=keep):
        Path(run.artifact_path).unlink(missing_ok=True)
        TrainingRun.objects.filter(id=run.id).update(artifact_path="")
        dropped.append(run.id)
    return dropped


def nearest_movies(movie_ids: object, vectors: object) -> tuple[object, object]:
    """Each movie's exact nearest movies (ids, inner products), stored with it so a page needs no search; None
    beyond NEIGHBOR_LISTS_MAX_MOVIES, where the all-pairs product gets slow and pages search instead."""
    from recommender.ml.scoring import top_neighbors
    from recommender.vector_store import NEIGHBORS

    if len(movie_ids) < 2 or len(movie_ids) > NEIGHBOR_LISTS_MAX_MOVIES:
        return None, None
    indices, scores = top_neighbors(vectors, NEIGHBORS)  # (num_movies, <= NEIGHBORS) each
    return movie_ids[indices], scores


_network_cache: dict[int, object] = {}


def live_network(run: TrainingRun) -> tuple[object, dict]:
    """The live run's network and artifact, loaded once per process."""
    from recommender.ml.features import build_movie_features
    from recommender.ml.pinsage import PinSageNetwork
    from recommender.ml.training import TrainingConfig

    if run.id not in _network_cache:
        artifact = load_artifact(run)
        config = TrainingConfig.from_dict(artifact.config)
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
        )
        network = PinSageNetwork(
            features, config.hidden_dim, config.walk.num_layers, config.dropout, config.use_id_embedding
        )
        network.load_state_dict(artifact.state_dict)
        _network_cache.clear()
        _network_cache[run.id] = (network, artifact)
    return _network_cache[run.id]


def _cold_start_vectors(run: TrainingRun, catalogue: object, positions: object) -> object:
    """Features-only vectors (as new movies get) for the catalogue rows at `positions`."""
    from recommender.ml.embeddings import cold_start_embeddings
    from recommender.ml.features import build_movie_features

    network, artifact = live_network(run)
    features = build_movie_features(
        [catalogue.titles[i] for i in positions],
        [catalogue.years[i] for i in positions],
        [catalogue.genres[i] for i in positions],
        vocabulary=artifact.vocabulary,
        genre_names=artifact.genre_names,
    )
    return cold_start_embeddings(network, features)


def roll_back() -> str:
    """Points the alias at the previous run's collection and records that run as live."""
    from recommender.pipeline import vector_lease
    from recommender.serving import forget_live_run, record_live_run, vector_store

    store = vector_store()
    with vector_lease("rolling back"):
        name = store.rollback()
        record_live_run(TrainingRun.objects.filter(id=store.run_of_collection(name)).first())
    forget_live_run()
    return name


def drop_old_collections() -> list[str]:
    """Old run collections (all but the live one and its rollback), then their model files."""
    from recommender.pipeline import vector_lease
    from recommender.serving import vector_store

    with vector_lease("dropping old collections"):
        dropped = vector_store().drop_old_collections(keep=2)
    drop_old_artifacts()
    return dropped


def remove_movies(movie_ids: list[int]) -> None:
    """Deleted movies leave the live collection (the next publish leaves them out anyway)."""
    from recommender.serving import forget_live_run, vector_store

    if movie_ids and vector_store().live_collection():
        vector_store().delete_movies(movie_ids)
        forget_live_run()


def embed_movie(movie_id: int) -> bool:
    """Gives a new or edited movie its vector in the live collection without retraining."""
    import numpy as np

    from recommender.ml.embeddings import cold_start_embeddings
    from recommender.ml.features import build_movie_features
    from recommender.serving import live_run, vector_store
    from recommender.vector_store import NEIGHBORS, MovieVectors

    run = live_run()
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
        )
        vector = cold_start_embeddings(network, features)
    # Its own nearest movies come from one search; other movies' stored lists learn of it at the next publish.
    hits = [h for h in vector_store().search(vector, NEIGHBORS + 1)[0] if h.movie_id != movie_id][:NEIGHBORS]
    vector_store().upsert_movies(
        MovieVectors(
            catalogue.movie_ids,
            vector,
            np.array([catalogue.years[0] or 0], dtype=np.int32),
            catalogue.genres,
            np.array([[h.movie_id for h in hits]], dtype=np.int64),
            np.array([[h.score for h in hits]], dtype=np.float32),
        )
    )
    return True
