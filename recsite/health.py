"""Health endpoints: liveness (the process answers) and readiness (database, broker, Milvus, workers)."""
import time

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


def _milvus() -> dict:
    from recommender.serving import vector_store

    return {"live_collection": vector_store().live_collection()}


def _workers() -> dict:
    from recsite.celery import app

    replies = app.control.ping(timeout=1.0) or []
    if not replies:
        raise RuntimeError("no worker answered a ping within 1 s")
    return {"workers": sorted(name for reply in replies for name in reply)}


@never_cache
def live(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"ok": True})


@never_cache
def ready(request: HttpRequest) -> JsonResponse:
    """503 when the database is down (nothing works); Milvus, broker or workers down only degrade."""
    checks = {"database": _check(_database), "broker": _check(_broker), "milvus": _check(_milvus),
              "workers": _check(_workers)}
    return JsonResponse({"ok": all(c["ok"] for c in checks.values()), "checks": checks},
                        status=200 if checks["database"]["ok"] else 503)
