"""The impression log: which lists people were shown, and what they did with the movies on them.

A page never waits on it. Serving a list draws the impression's id at random and puts the row on a bounded
in-process queue; a background thread writes what is queued in batches (bulk inserts, every
IMPRESSION_FLUSH_MS). When the queue is full the row is dropped and counted, never waited for. Clicks (a link
carrying the impression's id), ratings and "not interested" (events from the catalogue, after their
transaction commits) go through the same queue; a rating or hide is matched to the person's latest impression
that showed the movie within INTERACTION_WINDOW_MINUTES.

Rows name nobody beyond the user id (anonymous lists have none). `prune` deletes raw rows older than
IMPRESSION_RETENTION_DAYS, except a running experiment's, and keeps their daily counts (ImpressionDay)."""

import logging
import os
import queue
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.db import close_old_connections, transaction
from django.db.models import Count, F
from django.db.models.functions import TruncDate
from django.utils import timezone

from recommender.models import Experiment, Impression, ImpressionDay, Interaction
from recommender.serving import Recommendations

logger = logging.getLogger(__name__)

BATCH = 500  # rows a write takes at most


@dataclass
class _Counters:
    queued: int = 0
    written: int = 0
    dropped: int = 0  # the queue was full
    failed: int = 0  # the database refused a batch
    unmatched: int = 0  # a rating or hide with no impression of that movie in the window


@dataclass
class _Log:
    """This process's queue and writer; a forked child starts its own (gunicorn forks after import)."""

    pid: int
    queue: "queue.Queue[tuple[str, dict]]"
    counters: _Counters = field(default_factory=_Counters)
    writer: threading.Thread | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)  # one batch written at a time in a process


_log: _Log | None = None
_log_lock = threading.Lock()


def _current() -> _Log:
    global _log
    if _log is None or _log.pid != os.getpid():
        with _log_lock:
            if _log is None or _log.pid != os.getpid():
                _log = _Log(os.getpid(), queue.Queue(maxsize=settings.IMPRESSION_QUEUE_SIZE))
    return _log


def counters() -> _Counters:
    """This process's tallies since it started (the health page and tests read them)."""
    return _current().counters


def new_impression_id() -> int:
    return secrets.randbits(62) + 1  # positive, fits a signed BIGINT, never 0


def log_impression(
    user_id: int | None,
    surface: str,
    source: str,
    movies: list[int],
    run_id: int | None = None,
    experiment_id: int | None = None,
    teams: list[int] | None = None,
    context_movie_id: int | None = None,
) -> int | None:
    """Queues one shown list and returns its id for the page's links, or None when logging is off or the list
    is empty. Never blocks."""
    if not settings.IMPRESSIONS_ENABLED or not movies:
        return None
    impression_id = new_impression_id()
    row = {
        "id": impression_id,
        "user_id": user_id,
        "shown_at": timezone.now(),
        "surface": surface,
        "source": source,
        "run_id": run_id,
        "experiment_id": experiment_id,
        "movies": [int(m) for m in movies],
        "teams": [int(t) for t in teams or []],
        "context_movie_id": context_movie_id,
    }
    return impression_id if _put("impression", row) else None


def shown(
    user: User | AnonymousUser,
    result: Recommendations,
    surface: str,
    source: str = "",
    context_movie_id: int | None = None,
) -> Recommendations:
    """Logs a list as shown (page or API) and sets its impression id, for the links that carry it."""
    result.impression_id = log_impression(
        user.id if user.is_authenticated else None,
        surface,
        source or result.source,
        [item.movie.id for item in result.items],
        run_id=result.run_id,
        experiment_id=result.experiment_id,
        teams=result.teams,
        context_movie_id=context_movie_id,
    )
    return result


def clicked(user: User | AnonymousUser, value: str, movie_id: int) -> None:
    """A movie page opened from a list (?from=<impression id>); anything else in `from` is ignored."""
    if value.isascii() and value.isdigit() and 0 < len(value) <= 19 and int(value) < 2**63:
        note_click(user.id if user.is_authenticated else None, int(value), movie_id)


def note_click(user_id: int | None, impression_id: int, movie_id: int) -> None:
    """A shown movie was opened from its list (the link carried the impression's id)."""
    if settings.IMPRESSIONS_ENABLED:
        _put("click", {"user_id": user_id, "impression_id": impression_id, "movie_id": movie_id, "at": timezone.now()})


def note_action(user_id: int, movie_id: int, kind: str) -> None:
    """A rating or a "not interested", matched later to the impression that showed the movie, if any."""
    if settings.IMPRESSIONS_ENABLED:
        _put(kind, {"user_id": user_id, "movie_id": movie_id, "at": timezone.now()})


def _put(kind: str, row: dict) -> bool:
    log = _current()
    try:
        log.queue.put_nowait((kind, row))
    except queue.Full:
        log.counters.dropped += 1
        return False
    log.counters.queued += 1
    if settings.IMPRESSION_FLUSH_MS > 0:
        _ensure_writer(log)
    return True


def _ensure_writer(log: _Log) -> None:
    if log.writer is None or not log.writer.is_alive():
        with _log_lock:
            if log.writer is None or not log.writer.is_alive():
                log.writer = threading.Thread(target=_write_forever, args=(log,), name="impressions", daemon=True)
                log.writer.start()


def _write_forever(log: _Log) -> None:
    while True:
        try:
            first = log.queue.get(timeout=60)
        except queue.Empty:
            continue
        time.sleep(settings.IMPRESSION_FLUSH_MS / 1000)  # gather a batch rather than write row by row
        try:
            _write(log, [first, *_drain(log, BATCH - 1)])
        finally:
            close_old_connections()  # a thread's connection is its own: never left open past its age


def flush() -> None:
    """Writes everything queued in this process now, in the caller's thread and database connection (tests,
    and settings.IMPRESSION_FLUSH_MS = 0, where no writer thread runs)."""
    log = _current()
    while True:
        batch = _drain(log, BATCH)
        if not batch:
            return
        _write(log, batch)


def _drain(log: _Log, limit: int) -> list[tuple[str, dict]]:
    rows: list[tuple[str, dict]] = []
    while len(rows) < limit:
        try:
            rows.append(log.queue.get_nowait())
        except queue.Empty:
            break
    return rows


def _write(log: _Log, batch: list[tuple[str, dict]]) -> None:
    """One batch: impressions first, so clicks and actions in the same batch find theirs. A batch the database
    refuses is counted and dropped: the log is worth less than the page or the worker."""
    with log.lock:
        try:
            impressions = [Impression(**row) for kind, row in batch if kind == "impression"]
            Impression.objects.bulk_create(impressions, ignore_conflicts=True)
            interactions = [_click(row) for kind, row in batch if kind == "click"]
            actions = [(kind, row) for kind, row in batch if kind in (Interaction.Kind.RATING, Interaction.Kind.HIDDEN)]
            interactions += _matched(log, actions)
            # ignore_conflicts: a second click on the same pick of the same list is the same interaction
            Interaction.objects.bulk_create([i for i in interactions if i is not None], ignore_conflicts=True)
            log.counters.written += len(batch)
        except Exception:  # the database down or refusing: count, drop, carry on
            log.counters.failed += len(batch)
            logger.exception("impression log: a batch of %s rows was dropped", len(batch))


def _click(row: dict) -> Interaction | None:
    return Interaction(
        impression_id=row["impression_id"],
        user_id=row["user_id"],
        movie_id=row["movie_id"],
        kind=Interaction.Kind.CLICK,
        at=row["at"],
    )


def _matched(log: _Log, actions: list[tuple[str, dict]]) -> list[Interaction]:
    """Each rating or hide against the person's latest impression showing that movie within the window."""
    if not actions:
        return []
    window = timedelta(minutes=settings.INTERACTION_WINDOW_MINUTES)
    users = {row["user_id"] for _, row in actions}
    earliest = min(row["at"] for _, row in actions) - window
    recent: dict[int, list[tuple[datetime, int, list[int]]]] = {}
    shown = Impression.objects.filter(user_id__in=users, shown_at__gte=earliest).order_by("-shown_at")
    for impression_id, user_id, shown_at, movies in shown.values_list("id", "user_id", "shown_at", "movies"):
        recent.setdefault(user_id, []).append((shown_at, impression_id, movies))
    found = []
    for kind, row in actions:
        match = next(
            (
                impression_id
                for shown_at, impression_id, movies in recent.get(row["user_id"], [])
                if row["at"] - window <= shown_at <= row["at"] and row["movie_id"] in movies
            ),
            None,
        )
        if match is None:
            log.counters.unmatched += 1
            continue
        found.append(
            Interaction(impression_id=match, user_id=row["user_id"], movie_id=row["movie_id"], kind=kind, at=row["at"])
        )
    return found


# Pruning (a beat task, daily) ----------------------------------------------------------------------------


def prune(now: datetime | None = None, chunk: int = 5000) -> tuple[int, int]:
    """Deletes raw rows older than IMPRESSION_RETENTION_DAYS (not those of an experiment still preparing or
    running), adding what they counted to ImpressionDay in the same transaction as each chunk's delete: a row is
    counted exactly once, however often this runs or wherever it stops. Returns (impressions, interactions)."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.IMPRESSION_RETENTION_DAYS)
    old = Impression.objects.filter(shown_at__lt=cutoff).exclude(
        experiment__status__in=[Experiment.Status.PREPARING, Experiment.Status.RUNNING]
    )
    deleted = [0, 0]
    while True:  # in chunks, so a large backlog never holds one long transaction
        with transaction.atomic():
            ids = list(old.select_for_update(skip_locked=True).values_list("id", flat=True)[:chunk])
            if not ids:
                break
            _count_days(ids)
            deleted[1] += Interaction.objects.filter(impression_id__in=ids).delete()[0]
            deleted[0] += Impression.objects.filter(id__in=ids).delete()[0]
    return deleted[0], deleted[1]


def _count_days(ids: list[int]) -> None:
    counts: dict[tuple[date, str, str, int | None], dict[str, int]] = {}
    rows = Impression.objects.filter(id__in=ids).annotate(day=TruncDate("shown_at"))
    for row in rows.values("day", "surface", "source", "run_id").annotate(n=Count("id")):
        counts.setdefault((row["day"], row["surface"], row["source"], row["run_id"]), {})["impressions"] = row["n"]
    acted = Interaction.objects.filter(impression_id__in=ids).annotate(day=TruncDate("impression__shown_at"))
    fields = ("day", "impression__surface", "impression__source", "impression__run_id", "kind")
    for row in acted.values(*fields).annotate(n=Count("id")):
        key = (row["day"], row["impression__surface"], row["impression__source"], row["impression__run_id"])
        counts.setdefault(key, {})[{"click": "clicks", "rating": "ratings", "hidden": "hidden"}[row["kind"]]] = row["n"]
    for (day, surface, source, run_id), values in counts.items():
        found, _ = ImpressionDay.objects.get_or_create(day=day, surface=surface, source=source, run_id=run_id)
        ImpressionDay.objects.filter(id=found.id).update(**{name: F(name) + n for name, n in values.items()})
