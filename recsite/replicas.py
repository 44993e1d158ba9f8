"""Page reads from a MySQL read replica, when DATABASE_REPLICA_URL names one; everything else on the primary.

Only the reads of GET and HEAD page requests go to the replica, and not for someone who wrote in the last
REPLICA_STICKY_S seconds (a rating, a sign-up), so people see their own changes despite replication lag.
Workers, commands, admin and every write stay on the primary. Without a replica this does nothing."""

import time
from collections.abc import Callable
from contextvars import ContextVar

from django.conf import settings
from django.http import HttpRequest, HttpResponseBase

REPLICA = "replica"
PRIMARY_COOKIE = "primary_until"
_reads_from_replica: ContextVar[bool] = ContextVar("reads_from_replica", default=False)


class ReplicaRouter:
    def db_for_read(self, model: type, **hints: object) -> str:
        return REPLICA if _reads_from_replica.get() else "default"

    def db_for_write(self, model: type, **hints: object) -> str:
        return "default"

    def allow_relation(self, first: object, second: object, **hints: object) -> bool:
        return True  # one database, two connections

    def allow_migrate(self, db: str, app_label: str, **hints: object) -> bool:
        return db == "default"


def replica_configured() -> bool:
    return REPLICA in settings.DATABASES


def may_read_replica(request: HttpRequest) -> bool:
    if not replica_configured() or request.method not in ("GET", "HEAD"):
        return False
    if request.path_info.startswith(("/" + settings.ADMIN_URL.lstrip("/"), "/health/")):
        return False  # staff see what they just did; health checks the primary
    try:
        return float(request.COOKIES.get(PRIMARY_COOKIE, 0)) < time.time()
    except ValueError:
        return True


class ReplicaMiddleware:
    """Marks the request's reads for the replica, and keeps a writer on the primary for a while."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        token = _reads_from_replica.set(may_read_replica(request))
        try:
            response = self.get_response(request)
        finally:
            _reads_from_replica.reset(token)
        if replica_configured() and request.method not in ("GET", "HEAD", "OPTIONS"):
            sticky = settings.REPLICA_STICKY_S
            response.set_cookie(
                PRIMARY_COOKIE, str(int(time.time() + sticky)), max_age=sticky, httponly=True, samesite="Lax"
            )
        return response
