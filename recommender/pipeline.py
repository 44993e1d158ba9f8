"""Keeping recommendations fresh: change marks, debounced retraining, the publish gate, movie upserts."""

import logging
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from movies.models import Movie
from recommender.models import RecommenderState, TrainingRun

logger = logging.getLogger(__name__)
OVERDUE_GRACE_S = 120


RESYNC_BATCH = 1000


def enqueue(task: object, *args: object, options: dict | None = None) -> bool:
    """Send a task without ever failing or stalling the caller: a down or hung broker only logs a warning.

    Whatever was not sent is found again by the beat sweeper, since the change mark is in the database."""
    try:
        task.apply_async(args=args, retry=False, **(options or {}))
        return True
    except Exception as error:  # kombu, redis and socket errors all mean "not sent now"
        logger.warning("could not enqueue %s%s, the sweeper will retry: %s", task.name, args, error)
        return False


_sender = ThreadPoolExecutor(max_workers=1, thread_name_prefix="enqueue")
_pending = threading.BoundedSemaphore(100)


def enqueue_soon(task: object, *args: object, options: dict | None = None) -> None:
    """Send from a background thread, so a page never waits on the broker (a refused Redis connection
    still costs seconds in redis-py's own retries). Beyond 100 unsent messages, new ones are dropped:
    the change marks in the database let the sweeper catch up."""
    if not _pending.acquire(blocking=False):
        logger.warning("enqueue backlog full, leaving %s to the sweeper", task.name)
        return

    def send() -> None:
        try:
            enqueue(task, *args, options=options)
        finally:
            _pending.release()

    _sender.submit(send)


def wait_for_sends(timeout: float = 30) -> None:
    """Blocks until messages handed to the background sender so far have been tried (tests, shutdown)."""
    _sender.submit(lambda: None).result(timeout=timeout)


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


def note_data_changed(num_changes: int = 1) -> None:
    """Marks the data as changed, in the caller's transaction; a retrain check is sent after commit."""
    from recommender import tasks

    RecommenderState.current()
    RecommenderState.objects.filter(id=1).update(num_changes=F("num_changes") + num_changes, changed_at=timezone.now())
    transaction.on_commit(lambda: enqueue_soon(tasks.maybe_retrain))


def note_movie_changed(movie_id: int) -> None:
    """A new or edited movie gets its vector from the live model after commit, without a retrain."""
    from recommender import tasks

    transaction.on_commit(lambda: enqueue_soon(tasks.embed_movie, movie_id))


def note_movies_deleted(movie_ids: list[int]) -> None:
    """Deleted movies leave Milvus after commit."""
    from recommender import tasks

    ids = [int(i) for i in movie_ids]
    if ids:
        transaction.on_commit(lambda: enqueue_soon(tasks.remove_movies, ids))


def request_retrain(reason: str, requested_by: object | None = None) -> TrainingRun | None:
    """Queues a run unless one is already queued (debounce); None when it was already queued."""
    from recommender import tasks

    with transaction.atomic():
        state = RecommenderState.objects.select_for_update().get(id=RecommenderState.current().id)
        if TrainingRun.objects.filter(status=TrainingRun.Status.QUEUED).exists():
            return None
        run = TrainingRun.objects.create(
            reason=reason, requested_by=requested_by, config=dict(settings.RECOMMENDER_TRAINING_CONFIG)
        )
        state.num_changes = 0
        state.last_requested_at = timezone.now()
        state.save(update_fields=["num_changes", "last_requested_at"])
        limits = training_limits()
        transaction.on_commit(lambda: enqueue_soon(tasks.train_model, run.id, options=limits))
    return run


def maybe_retrain() -> TrainingRun | None:
    """Retrains when enough changes piled up, or when changes have waited longer than the period."""
    state = RecommenderState.current()
    if not state.num_changes:
        return None
    waited = state.changed_at and timezone.now() - state.changed_at >= timedelta(seconds=settings.RETRAIN_MAX_DELAY_S)
    if state.num_changes >= settings.RETRAIN_MIN_CHANGES or waited:
        return request_retrain(f"{state.num_changes} change(s)")
    return None


def resend_stuck_runs() -> int:
    """Queued runs whose message was lost (broker down at commit time) are sent again."""
    from recommender import tasks

    stale = timezone.now() - timedelta(seconds=settings.RETRAIN_RESEND_AFTER_S)
    runs = list(
        TrainingRun.objects.filter(status=TrainingRun.Status.QUEUED, created_at__lt=stale).values_list("id", flat=True)
    )
    return sum(enqueue(tasks.train_model, run_id, options=training_limits()) for run_id in runs)


def training_limits() -> dict:
    """Time limits travel in the message, so they are read from settings when it is sent (Celery caches the
    task's own options after the first send)."""
    return {"soft_time_limit": settings.TRAINING_SOFT_TIME_LIMIT_S, "time_limit": settings.TRAINING_TIME_LIMIT_S}


def fail_run(run_id: int, reason: str) -> bool:
    """Marks a running run FAILED; False when it had already ended (or never started)."""
    return bool(
        TrainingRun.objects.filter(id=run_id, status=TrainingRun.Status.RUNNING).update(
            status=TrainingRun.Status.FAILED, finished_at=timezone.now(), failure_reason=reason
        )
    )


def fail_overdue_runs() -> int:
    """Runs still RUNNING well past the hard time limit lost their worker without a word (both the child and
    its parent killed, say): nothing will finish them, so they are failed and the next request may go ahead."""
    limit = settings.TRAINING_TIME_LIMIT_S
    overdue = timezone.now() - timedelta(seconds=limit + OVERDUE_GRACE_S)
    runs = TrainingRun.objects.filter(status=TrainingRun.Status.RUNNING, started_at__lt=overdue)
    return sum(
        fail_run(
            run_id, f"still running {OVERDUE_GRACE_S} s after the hard time limit of {limit} s; its worker was lost"
        )
        for run_id in runs.values_list("id", flat=True)
    )


def run_training(run_id: int, redelivered: bool) -> None:
    """The training task's body: claim (or re-claim after a dead worker), train, then gate the publish."""
    from recommender import services

    run = TrainingRun.objects.filter(id=run_id).first()
    if run is None:
        return
    if run.status == TrainingRun.Status.RUNNING and redelivered:
        if run.attempts >= settings.TRAINING_MAX_ATTEMPTS:
            TrainingRun.objects.filter(id=run_id, status=TrainingRun.Status.RUNNING).update(
                status=TrainingRun.Status.FAILED,
                finished_at=timezone.now(),
                failure_reason=f"the worker died {run.attempts} times while training; giving up",
            )
            return
        # The worker that held it died (its message came back): hand the run to this attempt.
        TrainingRun.objects.filter(id=run_id, status=TrainingRun.Status.RUNNING, attempts=run.attempts).update(
            status=TrainingRun.Status.QUEUED
        )
    trained = services.train_model(run_id)
    if trained is None or trained.status != TrainingRun.Status.SUCCEEDED:
        return
    if is_worse_than_live(trained):
        return
    send_publish(run_id)


def send_publish(run_id: int) -> bool:
    """Counts the attempt first, so a lost message is resent by the sweeper, and never beyond the cap."""
    from recommender import tasks

    TrainingRun.objects.filter(id=run_id).update(publish_attempts=F("publish_attempts") + 1)
    return enqueue(tasks.publish_embeddings, run_id)


def resend_lost_publishes() -> int:
    """The newest succeeded run that passed the gate but never went live (its publish message lost to a broker
    error, or given up on during a Milvus outage) is sent again, up to PUBLISH_MAX_ATTEMPTS."""
    stale = timezone.now() - timedelta(seconds=settings.RETRAIN_RESEND_AFTER_S)
    newest = TrainingRun.objects.succeeded().order_by("-finished_at", "-id").first()
    if (
        newest is None
        or newest.published_at
        or newest.held_back_reason
        or newest.finished_at is None
        or newest.finished_at > stale
        or newest.publish_attempts >= settings.PUBLISH_MAX_ATTEMPTS
    ):
        return 0
    return int(send_publish(newest.id))


def resync_movie_vectors() -> int:
    """Movies added or edited since the last sweep get their vector again (embed_movie is an idempotent upsert),
    so a message lost while Redis was down costs at most one sweep period."""
    from recommender import tasks
    from recommender.serving import live_run
    from recommender.vector_store import VectorStoreUnavailable

    state = RecommenderState.current()
    now = timezone.now()
    try:
        run = live_run()
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
    sent = sum(enqueue(tasks.embed_movie, movie_id) for movie_id, _ in edited)
    if sent == len(edited):  # all sent: next time from here (a full batch: from its last edit, to go on)
        mark = edited[-1][1] if len(edited) == RESYNC_BATCH else now
        RecommenderState.objects.filter(id=state.id).update(vectors_synced_at=mark)
    return sent


def is_worse_than_live(run: TrainingRun) -> bool:
    """A run whose validation HR@10 is below the live run's by more than the tolerance is held back."""
    from recommender.serving import live_run, recorded_live_run
    from recommender.vector_store import VectorStoreUnavailable

    try:
        live = live_run()
    except VectorStoreUnavailable:  # the run recorded at the last publish or rollback, not the last published
        live = recorded_live_run()
    if live is None or live.id == run.id:
        return False
    new, old = run.validation_metrics.get("hr@10", 0.0), live.validation_metrics.get("hr@10", 0.0)
    if new >= old - settings.PUBLISH_TOLERANCE:
        return False
    TrainingRun.objects.filter(id=run.id).update(
        held_back_reason=f"validation HR@10 {new:.4f} is below the live run {live.id}'s {old:.4f} "
        f"by more than {settings.PUBLISH_TOLERANCE}; staff can still make it live"
    )
    return True
