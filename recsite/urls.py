"""Top-level URL routes."""
from django.contrib import admin
from django.urls import include, path

from recsite.env import env_str

urlpatterns = [
    path(env_str("DJANGO_ADMIN_URL", "admin/"), admin.site.urls),
    path("", include("movies.urls")),
]
