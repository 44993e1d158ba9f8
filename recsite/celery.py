"""The Celery application, configured from Django settings (CELERY_* names)."""

import os

from celery import Celery
from celery.signals import setup_logging, worker_process_init
from django.conf import settings

from recsite.logs import configure

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "recsite.settings")

app = Celery("recsite")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@setup_logging.connect
def use_django_logging(**kwargs: object) -> None:
    """Celery logs through Django's LOGGING instead of replacing it."""
    configure(settings.LOGGING)


@worker_process_init.connect
def prepare_child(**kwargs: object) -> None:
    """Each forked child sets its own torch threads (shared/PITFALLS.md 3) and, unless told not to, imports
    torch and dgl now: a soft time limit firing inside those imports would be swallowed by their optional-import
    guards, so the task's clock must start after them. The parent never imports them."""
    os.environ["OMP_NUM_THREADS"] = str(settings.TORCH_NUM_THREADS)
    if settings.WORKER_PRELOAD_ML:
        from recommender.ml import embeddings, training  # noqa: F401  (torch and dgl: training children only)
