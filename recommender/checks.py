"""System checks for a deployment that cannot work as configured."""

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register

from recommender.ml.config import InvalidSetting, check_overrides


@register()
def milvus_lite_file_is_single_process(app_configs: object, **kwargs: object) -> list[CheckMessage]:
    """A milvus-lite .db file is locked by the first process that opens it (shared/PITFALLS.md 4)."""
    if not settings.MILVUS_URI.endswith(".db"):
        return []
    processes = settings.WEB_CONCURRENCY + 2  # gunicorn workers plus the two Celery workers
    return [
        Warning(
            f"MILVUS_URI={settings.MILVUS_URI} is a milvus-lite file, which only one process can open, but the site "
            f"runs {processes} processes that search and publish.",
            hint="Run `milvus-lite server --data-dir DIR --host 127.0.0.1 --port 19540` and set "
            "MILVUS_URI=http://127.0.0.1:19540 (scripts/run does this).",
            id="recommender.W001",
        )
    ]


@register()
def training_config_is_valid(app_configs: object, **kwargs: object) -> list[CheckMessage]:
    """A typo in RECOMMENDER_TRAINING_CONFIG would otherwise train the default without a word."""
    try:
        check_overrides(settings.RECOMMENDER_TRAINING_CONFIG)
    except InvalidSetting as error:
        return [Error(f"RECOMMENDER_TRAINING_CONFIG: {error}", id="recommender.E001")]
    return []
