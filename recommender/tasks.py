"""Celery entry points: each takes ids and makes one call into the lifecycle (runs) or the movie vectors (vectors).
Nothing imports this module but Celery: work is sent by name (recommender.outbox)."""

import logging
from typing import Any, cast

from celery import Task, shared_task
from celery.exceptions import TimeLimitExceeded
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User

from recommender import experiments, impressions, runs, vectors
from recommender.vector_store import VectorStoreUnavailable
from recommender.vectors import VectorsBusy

logger = logging.getLogger(__name__)


class TrainingTask(Task):
    def on_failure(self, exc: Exception, task_id: str, args: tuple, kwargs: dict, einfo: object) -> None:
        """Runs in the worker parent when the hard limit killed the child, which could not record it."""
        if isinstance(exc, TimeLimitExceeded) and args:
            runs.fail_run(args[0], f"killed at the hard time limit of {exc.args[0]} s")


@shared_task(
    bind=True,
    base=TrainingTask,
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=settings.TRAINING_SOFT_TIME_LIMIT_S,
    time_limit=settings.TRAINING_TIME_LIMIT_S,
)
def train_model(self: TrainingTask, run_id: int) -> None:
    # delivery_info is always there on a worker's request
    runs.run_training(run_id, redelivered=bool(cast(dict[str, Any], self.request.delivery_info).get("redelivered")))


# Publishing, rollback and clean-up wait their turn on the vector lease (VectorsBusy) and ride out a Milvus
# outage; each is idempotent, so a retry after a half-done attempt is safe.
_VECTOR_RETRY: dict[str, Any] = {
    "autoretry_for": (VectorStoreUnavailable, VectorsBusy),
    "retry_backoff": 10,
    "retry_backoff_max": 300,
    "max_retries": 8,
}


@shared_task(acks_late=True, **_VECTOR_RETRY)
def publish_embeddings(run_id: int) -> None:
    runs.publish(run_id)


@shared_task(**_VECTOR_RETRY)
def make_live(run_id: int, requested_by_id: int | None = None) -> None:
    """Staff's "Make the selected run live": the same publish, past the gate, in a worker, not the request."""
    try:
        runs.make_live(run_id, _user(requested_by_id))
    except runs.Refused as refusal:  # checked in the admin already; the state changed since (not an error)
        logger.warning("make live of run %s refused: %s", run_id, refusal)


@shared_task(**_VECTOR_RETRY)
def roll_back(requested_by_id: int | None = None) -> None:
    try:
        runs.roll_back(_user(requested_by_id))
    except runs.Refused as refusal:
        logger.warning("roll back refused: %s", refusal)


def _user(user_id: int | None) -> User | None:
    return get_user_model().objects.filter(id=user_id).first() if user_id else None


@shared_task(autoretry_for=(VectorStoreUnavailable,), retry_backoff=True, max_retries=5)
def embed_movie(movie_id: int) -> None:
    vectors.embed_movie(movie_id)


@shared_task(autoretry_for=(VectorStoreUnavailable, VectorsBusy), retry_backoff=True, max_retries=5)
def remove_movies(movie_ids: list[int]) -> None:
    vectors.remove_movies(movie_ids)


@shared_task
def maybe_retrain() -> None:
    runs.maybe_retrain()


@shared_task
def sweep() -> None:
    """Beat: retrain if changes are waiting, and resend the work whose message was lost: queued runs, a
    succeeded run never published, new or edited movies' vectors."""
    runs.maybe_retrain()
    runs.resend_stuck_runs()
    runs.fail_overdue_runs()
    runs.resend_lost_publishes()
    vectors.resync_movie_vectors()
    vectors.resend_removals()


@shared_task
def nightly_retrain() -> None:
    runs.request_retrain("nightly")


@shared_task(**_VECTOR_RETRY)
def drop_old_collections() -> None:
    runs.drop_old_collections()


@shared_task(**_VECTOR_RETRY)
def prepare_experiment(experiment_id: int) -> None:
    """Writes an experiment's challenger collection beside the live one, then lets the experiment run."""
    try:
        experiments.prepare(experiment_id)
    except runs.Refused as refusal:  # the challenger's model file went since staff started it
        experiments.stop(experiment_id, f"the challenger cannot be served: {refusal}")


@shared_task
def prune_impressions() -> None:
    impressions.prune()
