"""recsite/replicas.py: with DATABASE_REPLICA_URL set, page reads go to the replica; writes, admin and a recent
writer's reads do not."""

import json
import os
import subprocess
import sys

import pytest
from django.test import RequestFactory

from recsite import replicas
from tests.conftest import ROOT, subprocess_database_url

PROBE = """
import json, django
django.setup()
from django.contrib.auth import get_user_model
from django.db import connections
from django.test import Client
from django.test.utils import CaptureQueriesContext
from movies.models import Movie

def queries(client, method, path, **data):
    with CaptureQueriesContext(connections["replica"]) as replica, CaptureQueriesContext(connections["default"]) as primary:
        status = getattr(client, method)(path, data).status_code
    return {"status": status, "replica": len(replica), "primary": len(primary)}

client = Client()
out = {"anonymous_home": queries(client, "get", "/")}
user = get_user_model().objects.create_user("replica-reader", password="not-used-here-1")
client.force_login(user)
movie = Movie.objects.create(title="Replicated (2001)", year=2001)
out["home"] = queries(client, "get", "/")
out["rate"] = queries(client, "post", f"/movies/{movie.id}/rate/", stars="4")
out["home_after_rating"] = queries(client, "get", "/")
out["admin"] = queries(client, "get", "/admin/login/")
print(json.dumps(out))
"""


@pytest.mark.django_db(transaction=True)
def test_pages_read_the_replica_and_a_writer_reads_the_primary_for_a_while() -> None:
    url = subprocess_database_url()
    env = {**os.environ, "DATABASE_URL": url, "DATABASE_REPLICA_URL": url, "DJANGO_SETTINGS_MODULE": "recsite.settings"}
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["anonymous_home"]["status"] == 200 and seen["anonymous_home"]["replica"] > 0
    assert seen["home"]["replica"] > 0
    assert seen["rate"]["status"] in (200, 302) and seen["rate"]["replica"] == 0 and seen["rate"]["primary"] > 0
    assert seen["home_after_rating"]["status"] == 200 and seen["home_after_rating"]["replica"] == 0
    assert seen["admin"]["replica"] == 0


def test_without_a_replica_nothing_changes(settings: object) -> None:
    request = RequestFactory().get("/")
    assert "replica" not in settings.DATABASES and not replicas.may_read_replica(request)
    assert replicas.ReplicaRouter().db_for_read(object) == "default"


def test_a_bad_cookie_reads_the_replica_rather_than_failing(settings: object) -> None:
    settings.DATABASES = {**settings.DATABASES, "replica": settings.DATABASES["default"]}
    request = RequestFactory().get("/", HTTP_COOKIE=f"{replicas.PRIMARY_COOKIE}=soon")
    assert replicas.may_read_replica(request)
    assert not replicas.may_read_replica(RequestFactory().post("/movies/1/rate/"))
    assert not replicas.may_read_replica(RequestFactory().get("/admin/"))


def test_the_admin_reads_the_primary_wherever_it_is_mounted(settings: object) -> None:
    settings.DATABASES = {**settings.DATABASES, "replica": settings.DATABASES["default"]}
    settings.ADMIN_URL = "backstage/"
    assert not replicas.may_read_replica(RequestFactory().get("/backstage/movies/rating/"))
    assert replicas.may_read_replica(RequestFactory().get("/admin/"))  # only a page of the site now
