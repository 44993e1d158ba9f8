"""App configuration for the recommender."""
from django.apps import AppConfig


class RecommenderConfig(AppConfig):
    name = "recommender"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from logging.config import dictConfig

        import pymilvus  # noqa: F401  (configures its own loggers as it is imported)
        from django.conf import settings

        from recommender import checks  # noqa: F401  (registers the system checks)

        # pymilvus installs a plain-text handler of its own on import; applying ours again puts its loggers
        # back under the project's format (LOG_FORMAT).
        dictConfig(settings.LOGGING)
