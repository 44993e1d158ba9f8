"""recsite/logs.py: LOG_FORMAT=json gives one parseable JSON object a line, with the fields a log collector indexes."""

import io
import json
import logging
from logging.config import dictConfig

import pytest

from recsite.logs import logging_config


@pytest.fixture
def restore_logging() -> None:
    saved = logging.root.handlers[:], logging.root.level
    yield
    logging.root.handlers[:], _ = saved
    logging.root.setLevel(saved[1])


def test_json_logs_are_one_object_a_line(restore_logging: None) -> None:
    config = logging_config("json", "INFO")
    config["handlers"]["console"]["stream"] = stream = io.StringIO()
    dictConfig(config)
    logger = logging.getLogger("recommender.outbox")
    logger.warning('could not enqueue "train_model"\nthe sweeper will retry')
    try:
        raise ConnectionError("Redis is down")
    except ConnectionError:
        logger.exception("broker error")
    first, second = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert first["level"] == "WARNING" and first["logger"] == "recommender.outbox" and "\n" in first["message"]
    assert {"time", "pid"} <= set(first)
    assert second["message"] == "broker error" and "ConnectionError: Redis is down" in second["exc_info"]


def test_text_logs_stay_plain_and_a_wrong_format_is_refused(restore_logging: None) -> None:
    config = logging_config("text", "INFO")
    config["handlers"]["console"]["stream"] = stream = io.StringIO()
    dictConfig(config)
    logging.getLogger("movies").info("imported")
    assert stream.getvalue().rstrip().endswith("INFO movies imported")
    with pytest.raises(ValueError, match="LOG_FORMAT must be json or text"):
        logging_config("xml", "INFO")


def test_pymilvus_logs_through_the_project_handlers_and_only_when_critical() -> None:
    import subprocess
    import sys

    from tests.conftest import ROOT

    # A fresh process: pymilvus installs a handler of its own when imported, and django.setup() must replace it.
    probe = (
        "import django, logging; django.setup(); import pymilvus; "
        "print([(logging.getLogger(n).handlers, logging.getLogger(n).propagate, logging.getLogger(n).level) "
        "for n in ('pymilvus', 'pymilvus.milvus_client')])"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip().splitlines()[-1] == str([([], True, logging.CRITICAL)] * 2)
