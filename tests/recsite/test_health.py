"""recsite/health.py: health endpoints for load balancers and orchestrators."""

import time

import pytest
from django.test import Client

from recommender import serving
from recommender.vector_store import VectorStore

TOKEN = {"HTTP_AUTHORIZATION": "Bearer monitor-secret"}


@pytest.fixture(autouse=True)
def fresh_checks(settings: object) -> None:
    from recsite import health

    settings.HEALTH_TOKEN = "monitor-secret"
    health.forget_checks()
    yield
    health.forget_checks()


def test_liveness_answers_without_touching_services(client: Client) -> None:
    assert client.get("/health/live/").json() == {"ok": True}


@pytest.mark.django_db
def test_readiness_reports_each_part_and_degrades_without_milvus(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(serving, "_store", VectorStore("http://127.0.0.1:9", timeout=1))
    response = client.get("/health/", **TOKEN)
    body = response.json()
    assert response.status_code == 200 and set(body["checks"]) == {"database", "broker", "milvus", "workers"}
    assert body["checks"]["database"]["ok"] and not body["checks"]["milvus"]["ok"] and body["ok"] is False


@pytest.mark.django_db
def test_readiness_answers_within_its_deadline_when_the_broker_hangs(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket
    import time

    from recsite import health
    from recsite.celery import app

    listener = socket.socket()  # accepts connections and never says a word, like a SIGSTOPped Redis
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    saved = app.conf.broker_url, app.conf.broker_transport_options
    hung = f"redis://127.0.0.1:{listener.getsockname()[1]}/0"
    monkeypatch.setenv("CELERY_BROKER_URL", hung)  # Celery prefers the environment's broker to its config
    app.conf.broker_url = hung
    app.conf.broker_transport_options = {"socket_timeout": 30, "socket_connect_timeout": 30}
    app._pool = None
    app.amqp._producer_pool = None
    try:
        started = time.monotonic()
        body = client.get("/health/", **TOKEN).json()
        elapsed = time.monotonic() - started
    finally:
        app.conf.broker_url, app.conf.broker_transport_options = saved
        app._pool = None
        app.amqp._producer_pool = None
        listener.close()
    assert elapsed < health.DEADLINE_S + 1.5, elapsed
    assert body["checks"]["database"]["ok"] and not body["checks"]["broker"]["ok"]
    assert not body["checks"]["workers"]["ok"]


@pytest.mark.django_db
def test_anonymous_callers_learn_only_up_or_down(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    from django.contrib.auth import get_user_model

    monkeypatch.setattr(serving, "_store", VectorStore("http://127.0.0.1:9", timeout=1))
    anonymous = client.get("/health/")
    assert anonymous.status_code == 200 and anonymous.json() == {"ok": False}
    assert "127.0.0.1:9" not in anonymous.content.decode()
    assert "checks" not in client.get("/health/", HTTP_AUTHORIZATION="Bearer wrong").json()
    assert client.get("/health/", **TOKEN).json()["checks"]["milvus"]["ok"] is False
    client.force_login(get_user_model().objects.create_user("ops", password="x-long-pass-1", is_staff=True))
    assert "checks" in client.get("/health/").json()


@pytest.mark.django_db
def test_a_burst_of_probes_runs_the_checks_once(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    from recsite import health

    calls = []
    monkeypatch.setattr(health, "_workers", lambda: calls.append(1) or time.sleep(0.5) or {"workers": ["w"]})
    monkeypatch.setattr(health, "_milvus", lambda: {"live_collection": None})
    answers = []
    threads = [threading.Thread(target=lambda: answers.append(Client().get("/health/").status_code)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    started = time.monotonic()
    for _ in range(20):
        client.get("/health/")
    assert time.monotonic() - started < 1.0  # cached: no worker ping each time
    assert len(calls) == 1 and answers == [200] * 8


@pytest.mark.timeout(60)
def test_readiness_answers_within_its_deadline_when_the_database_hangs(tmp_path: object) -> None:
    import os
    import socket
    import subprocess
    import sys

    from tests.conftest import ROOT

    listener = socket.socket()  # a MariaDB that accepts and never greets
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    code = (
        "import time, django; django.setup(); from django.test import Client; started = time.monotonic(); "
        "response = Client().get('/health/', HTTP_AUTHORIZATION='Bearer t'); "
        "print(response.status_code, round(time.monotonic() - started, 2), response.json()['checks']['database']['ok'])"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "recsite.settings",
        "HEALTH_TOKEN": "t",
        "DATABASE_URL": f"mysql://root@127.0.0.1:{listener.getsockname()[1]}/recsite",
        "RECSITE_VAR_DIR": str(tmp_path),
        "MILVUS_URI": "http://127.0.0.1:9",
        "CELERY_BROKER_URL": "filesystem://",
    }
    try:
        done = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=50
        )
    finally:
        listener.close()
    status, seconds, database_ok = done.stdout.split()[-3:]
    assert status == "503" and database_ok == "False", done.stdout + done.stderr
    from recsite import health

    assert float(seconds) < health.DEADLINE_S + 1.0, seconds
