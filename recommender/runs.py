"""The life of a training run, in the order it happens, and the only code that changes a TrainingRun's status:

1. requested: the change marks of ratings and imports (note_data_changed) queue one run, debounced, once enough
   changes piled up or waited long enough (maybe_retrain), or staff ask (admin, nightly, the command);
2. claimed and trained by the training worker (run_training, train_model): re-claimed once its message comes
   back from a dead worker, failed when it errs, times out or outlives its hard limit (fail_run);
3. gated: a run whose validation is worse than the live run's is held back (is_worse_than_live);
4. published: every current movie's vector and neighbour list to a new Milvus collection, the alias moved, the
   live run recorded (publish); staff's make_live is the same publish past the gate;
5. rolled back to the previous collection (roll_back); old collections and model files cleaned up;
6. recovered: the sweeper resends lost training and publish messages and fails runs whose worker vanished.

Tasks, admin actions and commands call these; this module sends tasks by name (recommender.outbox) and never
imports recommender.tasks."""

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

import numpy as np
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from movies import selectors
from movies import services as catalogue_services
from recommender import outbox, serving
from recommender.ml.config import check_overrides, deep_merged
from recommender.models import Experiment, LiveChange, RecommenderState, TrainingRun
from recommender.vector_store import MovieVectors, VectorStoreUnavailable
from recommender.vectors import cold_start_vectors, nearest_movies, vector_lease, vectors_catch_up

if TYPE_CHECKING:
    from recommender.ml.artifact import ModelArtifact
    from recommender.ml.config import TrainingConfig
    from recommender.ml.experiment import Outcome, Prepared
    from recommender.ml.training import EpochRecord

logger = logging.getLogger(__name__)
OVERDUE_GRACE_S = 120
ACTIVE_EXPERIMENT = (Experiment.Status.PREPARING, Experiment.Status.RUNNING)
KEEP_UNPUBLISHED_ARTIFACTS = 3  # held-back runs staff may still make live


# 1. Requested


def note_data_changed(num_changes: int = 1) -> None:
    """Marks the data as changed, in the caller's transaction; a retrain check is sent after commit."""
    RecommenderState.current()
    RecommenderState.objects.filter(id=1).update(num_changes=F("num_changes") + num_changes, changed_at=timezone.now())
    transaction.on_commit(lambda: outbox.send_soon(outbox.MAYBE_RETRAIN))


def maybe_retrain() -> TrainingRun | None:
    """Retrains when enough changes piled up, or when changes have waited longer than the period."""
    state = RecommenderState.current()
    if not state.num_changes:
        return None
    waited = state.changed_at and timezone.now() - state.changed_at >= timedelta(seconds=settings.RETRAIN_MAX_DELAY_S)
    if state.num_changes >= settings.RETRAIN_MIN_CHANGES or waited:
        return request_retrain(f"{state.num_changes} change(s)")
    return None


def request_retrain(
    reason: str, requested_by: User | None = None, overrides: dict[str, Any] | None = None
) -> TrainingRun | None:
    """Queues a run (with `overrides` of the pipeline's settings, checked) unless one is already queued
    (debounce); None when it was already queued."""
    return _create_run(reason, requested_by, overrides or {}, queue=True)


def create_training_run(config: dict, requested_by: User | None = None) -> TrainingRun:
    """A run for the command line: the pipeline's config under the given overrides. It trains on every
    rating there is now, so the changes counted so far are consumed and the pipeline does not queue
    a second run for them."""
    return cast(TrainingRun, _create_run("command line", requested_by, config, queue=False))  # None only when queued


def _create_run(reason: str, requested_by: User | None, overrides: dict, queue: bool) -> TrainingRun | None:
    """The one place a run is created: under the state row's lock, it consumes the changes counted so far;
    a queued one is sent to the training worker after commit, unless a queued run already waits (debounce)."""
    with transaction.atomic():
        state = RecommenderState.objects.select_for_update().get(id=RecommenderState.current().id)
        if queue and TrainingRun.objects.filter(status=TrainingRun.Status.QUEUED).exists():
            return None
        run = TrainingRun.objects.create(
            reason=reason,
            requested_by=requested_by,
            config=pipeline_overrides(overrides),
            # Counted as sent now, and sent from a background thread after commit (a request never waits on
            # the broker); if that send fails, the sweeper resends it after RETRAIN_RESEND_AFTER_S.
            training_sent_at=timezone.now() if queue else None,
            training_sends=1 if queue else 0,
        )
        state.num_changes = 0
        state.last_requested_at = timezone.now()
        state.save(update_fields=["num_changes", "last_requested_at"])
        if queue:
            limits = training_limits()
            transaction.on_commit(lambda: outbox.send_soon(outbox.TRAIN, run.id, options=limits))
    return run


def send_training(run_id: int) -> bool:
    """Sends a queued run's training message now and notes when, so the sweeper resends only a lost one."""
    if not outbox.send(outbox.TRAIN, run_id, options=training_limits()):
        return False
    TrainingRun.objects.filter(id=run_id, status=TrainingRun.Status.QUEUED).update(
        training_sent_at=timezone.now(), training_sends=F("training_sends") + 1
    )
    return True


def pipeline_overrides(overrides: dict) -> dict:
    """RECOMMENDER_TRAINING_CONFIG under a run's own overrides, merged deeply and checked: a typo is refused,
    naming the setting, rather than training the default without a word."""
    check_overrides(settings.RECOMMENDER_TRAINING_CONFIG)
    check_overrides(overrides)
    return deep_merged(settings.RECOMMENDER_TRAINING_CONFIG, overrides)


def training_limits() -> dict:
    """Time limits travel in the message, so they are read from settings when it is sent (Celery caches the
    task's own options after the first send)."""
    return {"soft_time_limit": settings.TRAINING_SOFT_TIME_LIMIT_S, "time_limit": settings.TRAINING_TIME_LIMIT_S}


# 2. Claimed and trained, or failed


def run_training(run_id: int, redelivered: bool) -> None:
    """The training task's body: claim (or re-claim after a dead worker), train, then gate the publish."""
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
    trained = train_model(run_id)
    if trained is None:
        return
    _send_next_queued()
    if trained.status != TrainingRun.Status.SUCCEEDED or is_worse_than_live(trained):
        return
    send_publish(run_id)


def _send_next_queued() -> None:
    """A run queued while this one trained had its message consumed and set aside (one training at a time):
    it is sent again now rather than at the next sweep."""
    waiting = TrainingRun.objects.filter(status=TrainingRun.Status.QUEUED, training_sent_at__isnull=True)
    for run_id in waiting.order_by("id").values_list("id", flat=True)[:1]:
        send_training(run_id)


def train_model(
    run_id: int,
    on_epoch: Callable[[dict], None] | None = None,
    with_baselines: bool = True,
    fail_if_busy: bool = False,
) -> TrainingRun | None:
    """Claims a queued run, trains and evaluates it, saves the artifact; None when another worker has it, or
    when another run is training (one at a time, on any number of workers and hosts). `fail_if_busy` (the
    command line, which cannot wait its turn in a queue): the run is failed, saying why, rather than left
    queued for a worker to train later with the command's settings."""
    if not _claim(run_id):
        if fail_if_busy:
            busy = TrainingRun.objects.filter(status=TrainingRun.Status.RUNNING).values_list("id", flat=True).first()
            TrainingRun.objects.filter(id=run_id, status=TrainingRun.Status.QUEUED).update(
                status=TrainingRun.Status.FAILED,
                finished_at=timezone.now(),
                failure_reason=f"run {busy} was training (one at a time); run the command again when it ends",
            )
            return TrainingRun.objects.get(id=run_id)
        return None
    run = TrainingRun.objects.get(id=run_id)
    try:
        _train(run, on_epoch, with_baselines)
    except Exception as error:
        from recommender.ml.experiment import NotEnoughData  # torch and dgl: never loaded by web processes

        _drop_broken_connection()
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


def _claim(run_id: int) -> bool:
    """Under the state row's lock, so two workers (or hosts) never both see "nothing is running" and start.
    A run that finds another training leaves its message used up (training_sent_at cleared): the running
    one sends it when it ends, or the sweeper does."""
    with transaction.atomic():
        RecommenderState.current()
        RecommenderState.objects.select_for_update().filter(id=1).first()
        if TrainingRun.objects.filter(status=TrainingRun.Status.RUNNING).exclude(id=run_id).exists():
            TrainingRun.objects.filter(id=run_id, status=TrainingRun.Status.QUEUED).update(training_sent_at=None)
            logger.info("run %s waits: another run is training", run_id)
            return False
        return bool(
            TrainingRun.objects.filter(id=run_id, status=TrainingRun.Status.QUEUED).update(
                status=TrainingRun.Status.RUNNING, started_at=timezone.now(), attempts=F("attempts") + 1
            )
        )


def _drop_broken_connection() -> None:
    """A killed database connection must not fail the status update that records the failure."""
    if connection.connection is not None and not connection.in_atomic_block and not connection.is_usable():
        connection.close()


def _train(run: TrainingRun, on_epoch: Callable[[dict], None] | None, with_baselines: bool) -> None:
    import torch  # torch: never loaded by web processes

    from recommender.ml import experiment  # torch and dgl: never loaded by web processes
    from recommender.ml.training import TrainingConfig  # torch and dgl: never loaded by web processes

    config = TrainingConfig.from_dict(deep_merged(TrainingConfig().as_dict(), run.config))
    if config.device == "auto":
        config = TrainingConfig.from_dict(
            {**config.as_dict(), "device": "cuda" if torch.cuda.is_available() else "cpu"}
        )
    interactions = selectors.ratings_for_training()  # the snapshot this run trains on, whatever arrives later
    catalogue_services.refresh_co_rated(interactions)  # the lists shown until this run is live, made fresh
    catalogue = selectors.movie_catalogue()
    prepared = experiment.prepare(interactions, catalogue, config)
    TrainingRun.objects.filter(id=run.id).update(
        num_users=prepared.split.num_users,
        num_movies=len(catalogue.movie_ids),
        num_ratings=len(interactions),
        device=config.device,
        config=config.as_dict(),
    )

    def record_epoch(record: "EpochRecord") -> None:
        row = {
            "epoch": record.epoch,
            "loss": record.loss,
            "seconds": record.seconds,
            "batches_per_second": record.batches_per_second,
            "validation": record.validation,
            "learning_rate": record.learning_rate,
            "ended_at": timezone.now().timestamp(),  # validation included: what progress estimates pace from
        }
        run.history.append(row)
        TrainingRun.objects.filter(id=run.id).update(history=run.history)
        if on_epoch:
            on_epoch(row)

    # EASE covers the 15k most-rated movies on larger catalogues (ml.evaluation), so it always runs.
    baselines = experiment.fit_baselines(prepared.split, experiment.RUN_BASELINE_GRIDS) if with_baselines else {}
    outcome = experiment.fit_pinsage(prepared, config, record_epoch)
    live_on_split = _live_on_this_split(prepared, outcome)
    artifact = save_artifact(run.id, outcome, prepared, replace(config, scoring=outcome.scoring))
    config = replace(config, scoring=outcome.scoring)
    TrainingRun.objects.filter(id=run.id).update(
        status=TrainingRun.Status.SUCCEEDED,
        finished_at=timezone.now(),
        best_epoch=outcome.result.best_epoch,
        config=config.as_dict(),
        seconds_to_best=outcome.result.seconds_to_best,
        averaged_epochs=outcome.result.averaged_epochs,
        validation_metrics=outcome.validation,
        test_metrics=outcome.test,
        baseline_metrics=baselines,
        live_on_split=live_on_split,
        artifact_path=str(artifact),
    )


def _live_on_this_split(prepared: "Prepared", outcome: "Outcome") -> dict:
    """The live model's validation figures on this run's own split, for the gate to compare like with like
    (the live run's own figures come from another snapshot, another split). {} when none can be had."""
    from recommender.ml import experiment  # torch and dgl: never loaded by web processes

    live = _current_live_run()
    if live is None or not live.artifact_path or not Path(live.artifact_path).is_file():
        return {}
    try:
        figures = experiment.validate_other_model(prepared, outcome.neighborhoods, load_artifact(live))
    except Exception:  # an artifact of an older layout: the gate falls back to the live run's own figures
        logger.warning(
            "could not score live run %s on run's split; the gate compares stored figures", live.id, exc_info=True
        )
        return {}
    return {"run": live.id, "validation": figures}


def _current_live_run() -> TrainingRun | None:
    try:
        return serving.live_run()
    except VectorStoreUnavailable:  # the run recorded at the last publish or rollback, not the last published
        return serving.recorded_live_run()


def save_artifact(run_id: int, outcome: "Outcome", prepared: "Prepared", config: "TrainingConfig") -> Path:
    """Weights, config, node map and the published embeddings in one file per run."""
    from recommender.ml.artifact import ModelArtifact  # torch: never loaded by web processes

    return ModelArtifact(
        state_dict=outcome.result.network.state_dict(),
        config=config.as_dict(),
        movie_ids=prepared.catalogue.movie_ids,
        vocabulary=prepared.features.vocabulary,
        genre_names=prepared.features.genre_names,
        embeddings=outcome.embeddings,
    ).save(Path(settings.ARTIFACTS_DIR) / f"run-{run_id}.pt")


def load_artifact(run: TrainingRun) -> "ModelArtifact":
    from recommender.ml.artifact import ModelArtifact  # torch: never loaded by web processes

    return ModelArtifact.load(run.artifact_path)


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


# 3. Gated


def is_worse_than_live(run: TrainingRun) -> bool:
    """A run whose validation HR@10 is below the live model's by more than PUBLISH_TOLERANCE is held back. The
    live model is scored on this run's own split when it trained (like with like); only when the live run has
    changed since, or could not be scored, are the two runs' own figures compared, each from its own split."""
    live = _current_live_run()
    if live is None or live.id == run.id:
        return False
    new = run.validation_metrics.get("hr@10", 0.0)
    same_split = run.live_on_split
    if same_split.get("run") == live.id:
        old, basis = same_split["validation"].get("hr@10", 0.0), "on this run's validation"
    else:
        old, basis = live.validation_metrics.get("hr@10", 0.0), "on its own snapshot's validation"
    if new >= old - settings.PUBLISH_TOLERANCE:
        return False
    TrainingRun.objects.filter(id=run.id).update(
        held_back_reason=f"validation HR@10 {new:.4f} is below the live run {live.id}'s {old:.4f} ({basis}) "
        f"by more than {settings.PUBLISH_TOLERANCE}; staff can still make it live"
    )
    return True


# 4. Published, or made live by staff


class Refused(ValueError):
    """A change to what is live that cannot be made as asked; the message says why, for staff to read."""


def send_publish(run_id: int) -> bool:
    """Counts the attempt first, so a lost message is resent by the sweeper, and never beyond the cap."""
    TrainingRun.objects.filter(id=run_id).update(publish_attempts=F("publish_attempts") + 1)
    return outbox.send(outbox.PUBLISH, run_id)


def publish(run_id: int) -> str | None:
    """The pipeline's publish of a succeeded run: its embeddings to a new collection, made live; safe to retry.
    A run older than the one already live is never put live by it (a late or retried message): that is
    recorded on the run and nothing changes; only staff's make_live or roll_back goes back in time."""
    return _publish(run_id, LiveChange.Action.PUBLISH, None)


def make_live(run_id: int, requested_by: User | None = None) -> str:
    """Staff's override: the same publish, past the gate and whatever its age (in a worker: it computes
    every movie's neighbours). Refused when the run is live already."""
    return cast(str, _publish(run_id, LiveChange.Action.MAKE_LIVE, requested_by))  # None only for the pipeline's


def check_make_live(run: TrainingRun) -> None:
    """Raises Refused, at once, when make_live would: for staff's screen, before anything is queued."""
    check_publishable(run)
    if live_run_id() == run.id:
        raise Refused(f"Run {run.id} is already live; nothing to do.")


def live_run_id() -> int | None:
    """The run the alias points to now (asked of Milvus, raising VectorStoreUnavailable when it cannot be)."""
    store = serving.vector_store()
    collection = store.live_collection()
    return store.run_of_collection(collection) if collection else None


def check_publishable(run: TrainingRun) -> None:
    if run.status != TrainingRun.Status.SUCCEEDED:
        raise Refused(f"Training run {run.id} has not succeeded; only a succeeded run can be made live.")
    if not run.artifact_path or not Path(run.artifact_path).is_file():
        raise Refused(
            f"Training run {run.id}'s model file is gone (the clean-up keeps the live run, its rollback, the "
            f"newest published run and the {KEEP_UNPUBLISHED_ARTIFACTS} newest unpublished runs); retrain instead."
        )


def _publish(run_id: int, action: str, requested_by: User | None) -> str | None:
    run = TrainingRun.objects.get(id=run_id)
    check_publishable(run)
    snapshot_at = timezone.now()
    newer = TrainingRun.objects.filter(published_at__isnull=False, id__gt=run.id)
    # Never live (every run that went live has published_at) and superseded: stop before a minute of neighbours.
    if action == LiveChange.Action.PUBLISH and run.published_at is None and newer.exists():
        return cast(str | None, _published_already(run, None, None, snapshot_at))  # not False: a newer one exists
    movies = _current_movie_vectors(run)
    store = serving.vector_store()
    with vector_lease(f"publishing run {run.id}"):
        live_id = live_run_id()
        if action == LiveChange.Action.MAKE_LIVE and live_id == run.id:
            raise Refused(f"Run {run.id} is already live; nothing to do.")
        if action == LiveChange.Action.PUBLISH:
            done = _published_already(run, live_id, movies, snapshot_at)
            if done is not False:
                return done
        name = store.publish(run.id, movies)
        _record_live_change(action, live_id, run, requested_by)
        serving.forget_live_run()
        vectors_catch_up(run, movies, snapshot_at)
        store.drop_old_collections(protected_runs())
    drop_old_artifacts()
    return name


def _published_already(
    run: TrainingRun, live_id: int | None, movies: MovieVectors | None, snapshot_at: datetime
) -> str | Literal[False] | None:
    """For the pipeline's publish (a message that may come late, twice, or after staff moved the alias): the
    collection name or None when there is nothing more to do, False when it should go ahead. Once a run was
    published it is never published again by the pipeline (a retry after a rollback would undo staff's
    choice), nor is a run older than one already published; a retry that finds its run live finishes what
    the first attempt may not have (catching up on the catalogue, the clean-up), both idempotent."""
    store = serving.vector_store()
    newer = TrainingRun.objects.filter(published_at__isnull=False, id__gt=run.id).order_by("-id").first()
    if live_id == run.id:
        since = min(snapshot_at, run.published_at) if run.published_at else snapshot_at
        # movies is None only with live_id None, before anything is read
        vectors_catch_up(run, cast(MovieVectors, movies), since - timedelta(seconds=settings.TASK_TIME_LIMIT_S))
        store.drop_old_collections(protected_runs())
        return store.collection_for_run(run.id)
    if run.published_at is None and newer is None:
        return False
    why = f"run {newer.id}, newer, was published first" if newer else "it was published before and has been moved from"
    TrainingRun.objects.filter(id=run.id).update(
        held_back_reason=f"not published again: {why}; staff can still make it live"
    )
    logger.info("run %s not published: %s", run.id, why)
    return None


def _current_movie_vectors(run: TrainingRun) -> MovieVectors:
    """Every movie that exists now, sorted by id: trained ones keep their vector, movies added since training
    get their features-only vector, deleted ones are left out; with each movie's exact neighbour list."""
    artifact = load_artifact(run)
    catalogue = selectors.movie_catalogue()
    trained = dict(zip(artifact.movie_ids.tolist(), range(len(artifact.movie_ids))))
    rows = [trained.get(int(m), -1) for m in catalogue.movie_ids]
    vectors = np.zeros((len(rows), artifact.embeddings.shape[1]), dtype=np.float32)
    known = np.array([r >= 0 for r in rows], dtype=bool)
    vectors[known] = artifact.embeddings[[r for r in rows if r >= 0]]
    if (~known).any():
        vectors[~known] = cold_start_vectors(run, catalogue, np.flatnonzero(~known))
    neighbors, scores = nearest_movies(catalogue.movie_ids, vectors)
    years = np.array([y or 0 for y in catalogue.years], dtype=np.int32)
    return MovieVectors(catalogue.movie_ids, vectors, years, catalogue.genres, neighbors, scores)


def _record_live_change(action: str, from_run_id: int | None, to_run: TrainingRun, by: User | None) -> None:
    with transaction.atomic():
        if action != LiveChange.Action.ROLL_BACK:
            TrainingRun.objects.filter(id=to_run.id, published_at__isnull=True).update(published_at=timezone.now())
        LiveChange.objects.create(
            action=action,
            from_run=TrainingRun.objects.filter(id=from_run_id).first() if from_run_id else None,
            to_run=to_run,
            by=by if getattr(by, "is_authenticated", False) else None,
        )
        RecommenderState.current()
        RecommenderState.objects.filter(id=1).update(live_run=to_run)
        # An experiment compares one live run with its challenger: once another run is live, it has ended.
        Experiment.objects.filter(status__in=ACTIVE_EXPERIMENT).exclude(live_run=to_run).update(
            status=Experiment.Status.STOPPED,
            stopped_at=timezone.now(),
            stop_reason=f"run {to_run.id} went live ({LiveChange.Action(action).label.lower()})",
        )
    serving.forget_experiment()


# 5. Rolled back; old collections and model files cleaned up


def rollback_target() -> TrainingRun | None:
    """The newest published run older than the live one whose collection is still in Milvus."""
    store = serving.vector_store()
    live_id = live_run_id()
    kept = {store.run_of_collection(name) for name in store.run_collections()}
    older = TrainingRun.objects.filter(published_at__isnull=False, id__in=kept - {None})
    if live_id is not None:
        older = older.filter(id__lt=live_id)
    return older.order_by("-id").first()


def roll_back(requested_by: User | None = None) -> str:
    """Points the alias at the previous run's collection and records the change; Refused when there is none."""
    store = serving.vector_store()
    with vector_lease("rolling back"):
        target = rollback_target()
        if target is None:
            raise Refused("There is no earlier run to roll back to.")
        live_id = live_run_id()
        name = store.collection_for_run(target.id)
        store.switch_to(name)
        _record_live_change(LiveChange.Action.ROLL_BACK, live_id, target, requested_by)
    serving.forget_live_run()
    return name


def protected_runs() -> set[int]:
    """Runs whose collection and model file the clean-up keeps: the live run, the run a rollback would go
    to, the newest published run (after a rollback it is the one staff would make live again), and the
    challenger of an experiment preparing or running."""
    live_id = live_run_id()
    newest = TrainingRun.objects.filter(published_at__isnull=False).order_by("-id").values_list("id", flat=True)
    target = rollback_target()
    challengers = set(
        Experiment.objects.filter(status__in=ACTIVE_EXPERIMENT).values_list("challenger_run_id", flat=True)
    )
    return {r for r in (live_id, newest.first(), target.id if target else None) if r is not None} | challengers


def stage_challenger(run_id: int) -> str:
    """Writes a succeeded run's collection beside the live one, the alias untouched (an experiment's
    challenger): the same vectors and neighbour lists a publish would write, for the movies of now."""
    run = TrainingRun.objects.get(id=run_id)
    check_publishable(run)
    movies = _current_movie_vectors(run)
    with vector_lease(f"staging run {run.id}"):
        return serving.vector_store().stage(run.id, movies)


def drop_old_collections() -> list[str]:
    """Old run collections (all but the protected runs'), then their model files."""
    with vector_lease("dropping old collections"):
        dropped = serving.vector_store().drop_old_collections(protected_runs())
    drop_old_artifacts()
    return dropped


def drop_old_artifacts() -> list[int]:
    """Deletes the artifact files of runs that can no longer go live or be rolled back to: kept are the runs
    whose collection still exists (the live one and its rollback), the newest succeeded runs that never went
    live, and any run still queued or running. Returns the runs whose artifact was removed."""
    store = serving.vector_store()
    with_collection = {store.run_of_collection(name) for name in store.run_collections()}
    unpublished = list(
        TrainingRun.objects.succeeded()
        .filter(published_at__isnull=True)
        .order_by("-id")
        .values_list("id", flat=True)[:KEEP_UNPUBLISHED_ARTIFACTS]
    )
    keep = with_collection | set(unpublished) | set(TrainingRun.objects.active().values_list("id", flat=True))
    keep |= protected_runs()
    dropped = []
    for run in TrainingRun.objects.exclude(artifact_path="").exclude(id__in=keep):
        Path(run.artifact_path).unlink(missing_ok=True)
        TrainingRun.objects.filter(id=run.id).update(artifact_path="")
        dropped.append(run.id)
    return dropped


# 6. Recovered by the sweeper


def resend_stuck_runs() -> int:
    """Queued runs whose message is lost are sent again: never sent (broker down at commit time), or set aside
    while another trained, or sent long ago with no training since (the broker lost it). While a run trains,
    a queued run's message waits behind it and is not lost. Each resend of one run waits twice as long as the
    one before, so a broker that drops messages (or a missing worker) never piles up duplicates."""
    if TrainingRun.objects.filter(status=TrainingRun.Status.RUNNING).exists():
        return 0
    now = timezone.now()
    sent = 0
    for run in TrainingRun.objects.filter(status=TrainingRun.Status.QUEUED).order_by("id"):
        wait = min(settings.RETRAIN_RESEND_AFTER_S * 2 ** min(max(run.training_sends - 1, 0), 16), 86_400)
        if run.training_sent_at is None or now - run.training_sent_at >= timedelta(seconds=wait):
            sent += send_training(run.id)
    return sent


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
