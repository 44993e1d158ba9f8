"""How far a training run has come and when its picks should be live: an estimate that updates each epoch.

Read by `manage.py recommender_status` (which `scripts/run` follows on a first start) and the admin. Training
stops early, so the end is a guess: the best epoch so far (or the last succeeded run's, if later) plus the
patience, at the seconds an epoch has taken so far, plus what the last publish took."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from django.utils import timezone

from recommender.models import TrainingRun

DEFAULT_PUBLISH_S = 60.0  # before any run has been published here


@dataclass(frozen=True)
class Progress:
    run_id: int
    status: str
    epochs_done: int
    max_epochs: int
    best_epoch: int | None
    best_validation_hr: float | None
    seconds_left: float | None  # None: no estimate yet (queued, or before the first epoch)

    def __str__(self) -> str:
        if self.status == TrainingRun.Status.QUEUED:
            return f"run {self.run_id} is queued for training"
        if self.status != TrainingRun.Status.RUNNING:
            return f"run {self.run_id} {self.status}"
        if not self.epochs_done:
            return f"run {self.run_id} is preparing its data; a first estimate comes after epoch 1"
        best = (
            f", best validation HR@10 {self.best_validation_hr:.4f} at epoch {self.best_epoch}"
            if self.best_validation_hr is not None
            else ""
        )
        left = f"; live in about {_duration(self.seconds_left)} (estimate)" if self.seconds_left is not None else ""
        return f"run {self.run_id} training: epoch {self.epochs_done} of at most {self.max_epochs}{best}{left}"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(10, round(seconds / 10) * 10):.0f} s"
    return f"{round(seconds / 60):.0f} min"


def training_progress(run: TrainingRun) -> Progress:
    history = run.history or []
    epochs_done = len(history)
    config = run.training_config
    max_epochs, patience = config.epochs, config.patience
    best_epoch, best_hr = None, None
    for row in history:
        hr = row.get("validation", {}).get("hr@10")
        if hr is not None and (best_hr is None or hr > best_hr):
            best_epoch, best_hr = row["epoch"], hr
    seconds_left = None
    if run.status == TrainingRun.Status.RUNNING and epochs_done and run.started_at:
        per_epoch, since_last = _pace(run, history)
        previous = TrainingRun.objects.succeeded().exclude(id=run.id).exclude(best_epoch=None).order_by("-id").first()
        expected_best = max(best_epoch or epochs_done, previous.best_epoch if previous else 0)
        epochs_left = max(0, min(max_epochs, expected_best + patience) - epochs_done)
        seconds_left = max(0.0, epochs_left * per_epoch - since_last) + _publish_seconds()
    return Progress(run.id, run.status, epochs_done, max_epochs, best_epoch, best_hr, seconds_left)


def _pace(run: TrainingRun, history: list[dict[str, Any]]) -> tuple[float, float]:
    """(seconds an epoch takes with its validation, seconds since the last one ended). From the epochs' end times
    where recorded: between epochs once there are two (the first also held the data's preparation), so the
    estimate counts down between epochs instead of growing while one runs."""
    now = timezone.now().timestamp()
    ends = [row["ended_at"] for row in history if "ended_at" in row]
    if len(ends) == len(history) and len(ends) >= 2:
        return (ends[-1] - ends[0]) / (len(ends) - 1), now - ends[-1]
    if len(ends) == len(history):
        return ends[0] - cast(datetime, run.started_at).timestamp(), now - ends[0]  # running: it has started
    return (now - cast(datetime, run.started_at).timestamp()) / len(history), 0.0  # runs recorded before end times were


def _publish_seconds() -> float:
    """What the last publish took after its training finished."""
    last = TrainingRun.objects.exclude(published_at=None).exclude(finished_at=None).order_by("-id").first()
    if last is None:
        return DEFAULT_PUBLISH_S
    return cast(float, max(0.0, (last.published_at - last.finished_at).total_seconds()))  # the row is Any


def active_progress() -> list[Progress]:
    """Every queued or running run's progress, oldest first."""
    return [training_progress(run) for run in TrainingRun.objects.active().order_by("id")]
