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
