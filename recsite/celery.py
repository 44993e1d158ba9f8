"""The Celery application, configured from Django settings (CELERY_* names)."""
import os

from celery import Celery
from celery.signals import setup_logging, worker_process_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "recsite.settings")

app = Celery("recsite")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@setup_logging.connect
def use_django_logging(**kwargs: object) -> None:
    """Celery logs through Django's LOGGING instead of replacing it."""
    from logging.config import dictConfig

    from django.conf import settings

    dictConfig(settings.LOGGING)


@worker_process_init.connect
def limit_torch_threads(**kwargs: object) -> None:
    """A forked child must not inherit torch's thread pool (shared/PITFALLS.md 3)."""
    from django.conf import settings

    os.environ["OMP_NUM_THREADS"] = str(settings.TORCH_NUM_THREADS)
