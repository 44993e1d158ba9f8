"""A second lockout, by client address alone, against password spraying (one address, many usernames).

django-axes locks each (username, address) pair after AXES_FAILURE_LIMIT failures, so nobody can lock
the real owner out from elsewhere; axes has one limit for every parameter set, so this backend adds a
higher one per address (AXES_ADDRESS_FAILURE_LIMIT within the cool-off), counted from axes' own records."""

from typing import Any

from axes.exceptions import AxesBackendPermissionDenied
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.db.models import Sum
from django.http import HttpRequest
from django.utils import timezone

from web.clientip import client_ip


def address_failures(address: str) -> int:
    since = timezone.now() - settings.AXES_COOLOFF_TIME
    total = AccessAttempt.objects.filter(ip_address=address, attempt_time__gte=since).aggregate(
        failures=Sum("failures_since_start")
    )["failures"]
    return total or 0


class AddressLockoutBackend(ModelBackend):
    """Refuses every login from an address over its limit; authenticates nobody itself (it is a ModelBackend
    only so that sessions that name it, as first backend, still find their user)."""

    def authenticate(
        self, request: HttpRequest | None, username: str | None = None, password: str | None = None, **credentials: Any
    ) -> None:
        if request is None:
            return None
        if address_failures(client_ip(request)) >= settings.AXES_ADDRESS_FAILURE_LIMIT:
            request.axes_locked_out = True  # type: ignore[attr-defined]  # axes' own flag, not declared on HttpRequest
            raise AxesBackendPermissionDenied("too many failed logins from this address")
        return None
