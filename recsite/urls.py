"""Top-level URL routes."""

from django.contrib import admin
from django.urls import include, path

from recsite import health
from recsite.env import env_str

urlpatterns = [
    path(env_str("DJANGO_ADMIN_URL", "admin/"), admin.site.urls),
    path("health/", health.ready, name="health"),
    path("health/live/", health.live, name="health_live"),
    path("", include("movies.urls")),
]
