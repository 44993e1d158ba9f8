"""Health endpoints for load balancers and orchestrators."""
import pytest
from django.test import Client

from recommender import serving
from recommender.vector_store import VectorStore


def test_liveness_answers_without_touching_services(client: Client) -> None:
    assert client.get("/health/live/").json() == {"ok": True}


@pytest.mark.django_db
def test_readiness_reports_each_part_and_degrades_without_milvus(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(serving, "_store", VectorStore("http://127.0.0.1:9", timeout=1))
    response = client.get("/health/")
    body = response.json()
    assert response.status_code == 200 and set(body["checks"]) == {"database", "broker", "milvus", "workers"}
    assert body["checks"]["database"]["ok"] and not body["checks"]["milvus"]["ok"] and body["ok"] is False


@pytest.mark.django_db
def test_readiness_answers_within_its_deadline_when_the_broker_hangs(client: Client,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
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
        body = client.get("/health/").json()
        elapsed = time.monotonic() - started
    finally:
        app.conf.broker_url, app.conf.broker_transport_options = saved
        app._pool = None
        app.amqp._producer_pool = None
        listener.close()
    assert elapsed < health.DEADLINE_S + 1.5, elapsed
    assert body["checks"]["database"]["ok"] and not body["checks"]["broker"]["ok"]
    assert not body["checks"]["workers"]["ok"]
