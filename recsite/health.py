"""Health endpoints: liveness (the process answers) and readiness (database, broker, Milvus, workers)."""
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache


def _check(probe: object) -> dict:
    started = time.monotonic()
    try:
        detail = probe()
        return {"ok": True, "ms": round((time.monotonic() - started) * 1000, 1), **(detail or {})}
    except Exception as error:  # a health check reports every failure instead of raising it
        return {"ok": False, "ms": round((time.monotonic() - started) * 1000, 1), "error": str(error)[:300]}


def _database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _broker() -> None:
    from recsite.celery import app

    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)
        client = getattr(conn.default_channel, "client", None)
        if hasattr(client, "ping"):
            client.ping()  # a hung Redis accepts connections and never answers


def _milvus() -> dict:
    from recommender.serving import vector_store

    return {"live_collection": vector_store().live_collection()}


def _workers() -> dict:
    from recsite.celery import app

    replies = app.control.ping(timeout=1.0) or []
    if not replies:
        raise RuntimeError("no worker answered a ping within 1 s")
    return {"workers": sorted(name for reply in replies for name in reply)}


_LOOPBACK = {"127.0.0.1", "::1"}


class ProbeMiddleware:
    """First in the chain: a health probe from the same machine or container (curl 127.0.0.1:8000/health/)
    is answered before host validation and the HTTPS redirect, which would refuse it (its Host is an
    address, not the site's name, and it speaks plain HTTP inside the proxy)."""

    def __init__(self, get_response: object) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> object:
        if request.method == "GET" and request.META.get("REMOTE_ADDR") in _LOOPBACK:
            if request.path == "/health/live/":
                return live(request)
            if request.path == "/health/":
                return ready(request)
        return self.get_response(request)


@never_cache
def live(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"ok": True})


# A probe must answer within its own timeout even when a backend hangs: the checks run side by side and
# whatever has not answered by the deadline is reported as down.
DEADLINE_S = 3.0
_probes = ThreadPoolExecutor(max_workers=6, thread_name_prefix="health")


@never_cache
def ready(request: HttpRequest) -> JsonResponse:
    """503 when the database is down (nothing works); Milvus, broker or workers down only degrade."""
    deadline = time.monotonic() + DEADLINE_S
    pending = {name: _probes.submit(_check, probe) for name, probe in
               (("broker", _broker), ("milvus", _milvus), ("workers", _workers))}
    checks = {"database": _check(_database)}  # here: Django's connections belong to the request's thread
    for name, future in pending.items():
        try:
            checks[name] = future.result(timeout=max(deadline - time.monotonic(), 0.0))
        except FutureTimeout:
            checks[name] = {"ok": False, "ms": DEADLINE_S * 1000, "error": f"no answer within {DEADLINE_S} s"}
    return JsonResponse({"ok": all(c["ok"] for c in checks.values()), "checks": checks},
                        status=200 if checks["database"]["ok"] else 503)
