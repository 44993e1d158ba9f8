"""Top-level URL routes."""

from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from recsite import health

urlpatterns = [
    path(settings.ADMIN_URL, admin.site.urls),
    path("health/", health.ready, name="health"),
    path("health/live/", health.live, name="health_live"),
    path("", include("web.urls")),
]
