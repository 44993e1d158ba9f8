"""Log configuration shared by Django, Celery and gunicorn: plain lines for people, JSON lines for collectors."""

import logging
from logging.config import dictConfig
from typing import Any

from pythonjsonlogger.json import JsonFormatter

FIELDS = "%(asctime)s %(levelname)s %(name)s %(process)d %(message)s"
RENAMED = {"asctime": "time", "levelname": "level", "name": "logger", "process": "pid"}


class AccessJsonFormatter(JsonFormatter):
    """gunicorn hands an access record its request atoms as a dict; each becomes a field of its own."""

    ATOMS = {
        "h": "remote_addr",
        "m": "method",
        "U": "path",
        "q": "query",
        "s": "status",
        "B": "bytes",
        "M": "duration_ms",
        "a": "user_agent",
    }

    def add_fields(self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]) -> None:
        super().add_fields(log_data, record, message_dict)
        if isinstance(record.args, dict):
            for atom, field in self.ATOMS.items():
                value = record.args.get(atom)
                log_data[field] = int(value) if isinstance(value, str) and value.isdigit() else value


def logging_config(log_format: str, level: str, gunicorn: bool = False) -> dict[str, Any]:
    """A dictConfig: LOG_FORMAT "json" gives one JSON object a line, anything else plain text."""
    if log_format not in {"json", "text"}:
        raise ValueError(f"LOG_FORMAT must be json or text, got {log_format!r}")
    as_json = log_format == "json"
    formatters = {
        "default": (
            {"()": JsonFormatter, "fmt": FIELDS, "rename_fields": RENAMED}
            if as_json
            else {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}
        ),
        "access": (
            {"()": AccessJsonFormatter, "fmt": FIELDS, "rename_fields": RENAMED}
            if as_json
            else {"format": "%(asctime)s %(message)s"}
        ),
    }
    handlers = {
        "console": {"class": "logging.StreamHandler", "formatter": "default"},
        "access": {"class": "logging.StreamHandler", "formatter": "access", "stream": "ext://sys.stdout"},
    }
    loggers: dict[str, dict[str, Any]] = {"django.db.backends": {"level": "WARNING"}}
    # pymilvus logs every failed call at ERROR with a traceback, including the ones the vector store handles
    # (a collection released by a restart is loaded and the call retried); the vector store reports real
    # failures itself, so pymilvus speaks only when critical, and through our handlers.
    for name in ("pymilvus", "pymilvus.milvus_client", "pymilvus.bulk_writer"):
        loggers[name] = {"level": "CRITICAL", "handlers": [], "propagate": True}
    if gunicorn:
        loggers["gunicorn.error"] = {"level": level, "handlers": ["console"], "propagate": False}
        loggers["gunicorn.access"] = {"level": "INFO", "handlers": ["access"], "propagate": False}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": formatters,
        "handlers": handlers,
        "root": {"handlers": ["console"], "level": level},
        "loggers": loggers,
    }


def configure(config: dict[str, Any]) -> None:
    """Applies a logging_config() dict (Django's LOGGING_CONFIG, Celery's setup_logging). pymilvus installs a
    plain-text handler of its own when first imported, so it is imported first and the dict then takes over."""
    import pymilvus  # noqa: F401  (here, not on top: gunicorn's master reads logging_config and needs no gRPC)

    dictConfig(config)
