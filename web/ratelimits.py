"""Fixed-window request limits counted in the database, so every web process shares them (ratings, sign-ups)."""

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from movies.models import RateCounter

logger = logging.getLogger(__name__)
KEY_LENGTH = RateCounter._meta.get_field("key").max_length


@dataclass(frozen=True)
class Limit:
    key: str  # what is counted and whose: "rating:user:42", "signup:address:192.0.2.1"
    max_requests: int  # 0: no limit
    window_s: int


@dataclass(frozen=True)
class Refusal:
    """A request over its limit; the window that counted it ends in retry_after_s seconds."""

    limit: Limit
    retry_after_s: int


def rating_limits(user_id: int, address: str) -> list[Limit]:
    window_s = settings.RATING_LIMIT_WINDOW_S
    return [
        Limit(f"rating:user:{user_id}", settings.RATING_LIMIT_PER_USER, window_s),
        Limit(f"rating:address:{address}", settings.RATING_LIMIT_PER_ADDRESS, window_s),
    ]


def signup_limits(address: str) -> list[Limit]:
    return [Limit(f"signup:address:{address}", settings.SIGNUP_LIMIT_PER_ADDRESS, settings.SIGNUP_LIMIT_WINDOW_S)]


def count_request(limits: Sequence[Limit]) -> Refusal | None:
    """Counts one request under each limit; the first limit it goes over, or None. Counting is atomic per
    key, so concurrent requests never both get the last place. A counter that cannot be written lets the
    request through: a broken limiter must never cost anyone a rating or a sign-up."""
    refusals = [_count(limit, timezone.now()) for limit in limits if limit.max_requests > 0]
    return next((refusal for refusal in refusals if refusal is not None), None)


def uncount_request(limits: Sequence[Limit]) -> None:
    """Gives back a counted request that did nothing (a sign-up form with errors)."""
    for limit in limits:
        counters = _counters(limit, _window_start(timezone.now(), limit.window_s)).filter(num_requests__gt=0)
        _fail_open(limit, counters.update, num_requests=F("num_requests") - 1)


def _count(limit: Limit, now: datetime) -> Refusal | None:
    start = _window_start(now, limit.window_s)
    num_requests = _fail_open(limit, _increment, limit, start)
    if num_requests == 1:
        _prune(now)  # the key's window has just opened: once per key and window, outside its transaction
    if num_requests is None or num_requests <= limit.max_requests:
        return None
    if num_requests == limit.max_requests + 1:  # once per key and window, however long a flood goes on
        logger.info("rate limit reached: %s, %d requests in %d s", limit.key, limit.max_requests, limit.window_s)
    window_end = start + timedelta(seconds=limit.window_s)
    return Refusal(limit, max(1, math.ceil((window_end - now).total_seconds())))


def _counters(limit: Limit, start: datetime) -> QuerySet[RateCounter]:
    return RateCounter.objects.filter(key=limit.key[:KEY_LENGTH], window_start=start)


def _increment(limit: Limit, start: datetime) -> int:
    """The key's count in this window after adding one; the row is created by the window's first request."""
    counters = _counters(limit, start)
    num_requests = _add_one(counters)
    if num_requests is not None:
        return num_requests
    try:
        # Its own transaction (a savepoint inside a caller's): a failed insert's locks are let go at once,
        # where holding them into the update below could deadlock two losers of the same race.
        with transaction.atomic():
            RateCounter.objects.create(
                key=limit.key[:KEY_LENGTH],
                window_start=start,
                expires_at=start + timedelta(seconds=limit.window_s),
                num_requests=1,
            )
        return 1
    except IntegrityError:  # another process created it between our update and insert
        return _add_one(counters) or 1


def _add_one(counters: QuerySet[RateCounter]) -> int | None:
    """The count after adding one, or None when the window has no row yet. The update keeps the row locked
    until the read, so each request reads its own count and two never share the last place."""
    with transaction.atomic():
        if counters.update(num_requests=F("num_requests") + 1):
            return counters.values_list("num_requests", flat=True).get()
    return None


def _prune(now: datetime) -> None:
    """Deletes the counters of ended windows (one indexed delete)."""
    try:
        with transaction.atomic():
            RateCounter.objects.filter(expires_at__lte=now).delete()
    except DatabaseError:  # two processes pruning at once may deadlock; the next window prunes again
        logger.info("pruning rate counters failed; left for the next window", exc_info=True)


def _window_start(now: datetime, window_s: int) -> datetime:
    return datetime.fromtimestamp(int(now.timestamp()) // window_s * window_s, tz=UTC)


def _fail_open(limit: Limit, write: Callable[..., int], *args: object, **kwargs: object) -> int | None:
    try:
        return write(*args, **kwargs)
    except DatabaseError:
        logger.warning("rate counter %s could not be written; the request is let through", limit.key, exc_info=True)
        return None
