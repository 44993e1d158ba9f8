"""Health endpoints: liveness (the process answers) and readiness (database, broker, Milvus, workers)."""

import hmac
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.db import connection
from django.http import HttpRequest, HttpResponseBase, JsonResponse
from django.views.decorators.cache import never_cache

from recommender.serving import serving_status, serving_status_now
from recsite.celery import app


def _check(probe: Callable[[], dict[str, Any] | None]) -> dict[str, Any]:
    started = time.monotonic()
    try:
        detail = probe()
        return {"ok": True, "ms": round((time.monotonic() - started) * 1000, 1), **(detail or {})}
    except Exception as error:  # a health check reports every failure instead of raising it
        return {"ok": False, "ms": round((time.monotonic() - started) * 1000, 1), "error": str(error)[:300]}


def _database() -> None:
    """On a health thread, with that thread's own connection, closed again: a hung server is waited for
    no longer than the deadline (and than DATABASE_CONNECT_TIMEOUT_S / DATABASE_READ_TIMEOUT_S)."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    finally:
        connection.close()


def _broker() -> None:
    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)
        client: Any = getattr(conn.default_channel, "client", None)
        if hasattr(client, "ping"):
            client.ping()  # a hung Redis accepts connections and never answers


def _milvus() -> dict:
    try:
        status = serving_status()
    finally:
        connection.close()  # the recorded live run may have been read on this health thread
    if not status.can_serve:
        raise RuntimeError(str(status))
    return {"live_run": status.live_run_id, "status": str(status)}


def _workers() -> dict:
    replies = app.control.ping(timeout=1.0) or []
    if not replies:
        raise RuntimeError("no worker answered a ping within 1 s")
    return {"workers": sorted(name for reply in replies for name in reply)}


_LOOPBACK = {"127.0.0.1", "::1"}


class ProbeMiddleware:
    """First in the chain: a health probe from the same machine or container (curl 127.0.0.1:8000/health/)
    is answered before host validation and the HTTPS redirect, which would refuse it (its Host is an
    address, not the site's name, and it speaks plain HTTP inside the proxy)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        view = {"/health/live/": live, "/health/": ready}.get(request.path)
        if view and request.method == "GET" and request.META.get("REMOTE_ADDR") in _LOOPBACK and _would_refuse(request):
            return view(request)
        return self.get_response(request)


def _would_refuse(request: HttpRequest) -> bool:
    try:
        request.get_host()
    except DisallowedHost:
        return True
    return settings.SECURE_SSL_REDIRECT and not request.is_secure()


@never_cache
def live(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"ok": True})


# A probe must answer within its own timeout even when a backend hangs: the checks run side by side and
# whatever has not answered by the deadline is reported as down.
DEADLINE_S = 3.0
# Checks are shared by every caller for this long: a burst of probes costs one round of checks (the
# worker ping alone waits its full second), not one round each, so health never ties up the web tier.
CACHE_S = 5.0
_probes = ThreadPoolExecutor(max_workers=12, thread_name_prefix="health")
_rounds = ThreadPoolExecutor(max_workers=1, thread_name_prefix="health-round")
_lock = threading.Lock()
_last: tuple[float, dict] = (-CACHE_S, {})
_round: Future | None = None


def _run_checks() -> dict:
    deadline = time.monotonic() + DEADLINE_S
    pending = {
        name: _probes.submit(_check, probe)
        for name, probe in (("database", _database), ("broker", _broker), ("milvus", _milvus), ("workers", _workers))
    }
    checks = {}
    for name, future in pending.items():
        try:
            checks[name] = future.result(timeout=max(deadline - time.monotonic(), 0.0))
        except FutureTimeout:
            checks[name] = {"ok": False, "ms": DEADLINE_S * 1000, "error": f"no answer within {DEADLINE_S} s"}
    return checks


def _finish_round() -> dict:
    global _last
    checks = _run_checks()
    _last = (time.monotonic(), checks)
    return checks


def forget_checks() -> None:
    """Waits for a round in flight and drops every result (tests)."""
    global _last, _round
    if _round is not None:
        _round.result(timeout=DEADLINE_S + 1)
    _last, _round = (-CACHE_S, {}), None


def start_round() -> Future:
    """A round of checks in the background, unless one is under way (gunicorn starts one as each worker boots,
    so even a worker's first probe finds an answer)."""
    global _round
    with _lock:
        if _round is None or _round.done():
            _round = _rounds.submit(_finish_round)
        return _round


def current_checks() -> dict:
    """The latest checks. Older than CACHE_S, a new round starts in the background and the caller gets the
    previous round at once: a hung backend delays the answer's freshness, never the answer (a probe
    waits only for a process's very first round, up to the deadline)."""
    if time.monotonic() - _last[0] < CACHE_S:
        return _last[1]
    round_ = start_round()
    if _last[1]:
        return _last[1]
    try:
        return round_.result(timeout=DEADLINE_S + 0.5)
    except FutureTimeout:
        return {"database": {"ok": False, "error": "health checks are stuck"}}


def _as_pages_see_it(check: dict) -> dict:
    """The round's Milvus check, unless this process's pages are falling back right now: a page's failure is
    news before the next round, and costs nothing to read (the breaker's own record)."""
    if not check.get("ok"):
        return check
    status = serving_status_now(check.get("live_run"))
    if status is None:
        return check
    return {"ok": False, "ms": 0.0, "error": str(status)}


def _may_see_details(request: HttpRequest) -> bool:
    """Staff, or a caller presenting HEALTH_TOKEN: anyone else learns only up or down."""
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated and user.is_staff:
        return True
    token = settings.HEALTH_TOKEN
    presented = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    return bool(token) and hmac.compare_digest(presented, token)


@never_cache
def ready(request: HttpRequest) -> JsonResponse:
    """503 when the database is down (nothing works); Milvus, broker or workers down only degrade."""
    checks = {**current_checks()}
    checks["milvus"] = _as_pages_see_it(checks.get("milvus", {"ok": False, "error": "not checked yet"}))
    body: dict[str, Any] = {"ok": all(c["ok"] for c in checks.values())}
    if _may_see_details(request):
        body["checks"] = checks
    return JsonResponse(body, status=200 if checks["database"]["ok"] else 503)
