"""System checks."""

from django.core.checks import run_checks


def test_a_milvus_lite_file_uri_is_flagged(settings: object) -> None:
    settings.MILVUS_URI = "var/milvus.db"
    assert "recommender.W001" in [message.id for message in run_checks()]


def test_a_milvus_server_uri_is_fine(settings: object) -> None:
    settings.MILVUS_URI = "http://127.0.0.1:19540"
    assert "recommender.W001" not in [message.id for message in run_checks()]
