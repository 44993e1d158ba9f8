"""The request type of views behind a login, for the type checker: their request.user is a User."""

from django.contrib.auth.models import User
from django.http import HttpRequest


class AuthenticatedHttpRequest(HttpRequest):
    """Only an annotation: login_required views and the API's logged-in views get an HttpRequest whose user has
    logged in (never AnonymousUser)."""

    user: User
