"""Work handed to the Celery workers, by task name: the lifecycle and the change marks send tasks without importing
recommender.tasks, which imports them, so control flows one way (tasks -> runs/vectors -> outbox)."""

import logging
import threading
from concurrent.futures import ThreadPoolExecutor

from celery import current_app  # the project's app (recsite.celery), known without importing upwards

logger = logging.getLogger(__name__)

TRAIN = "recommender.tasks.train_model"
PUBLISH = "recommender.tasks.publish_embeddings"
MAKE_LIVE = "recommender.tasks.make_live"
ROLL_BACK = "recommender.tasks.roll_back"
MAYBE_RETRAIN = "recommender.tasks.maybe_retrain"
EMBED_MOVIE = "recommender.tasks.embed_movie"
REMOVE_MOVIES = "recommender.tasks.remove_movies"
SWEEP = "recommender.tasks.sweep"
STAGE_CHALLENGER = "recommender.tasks.prepare_experiment"
ALL = (TRAIN, PUBLISH, MAKE_LIVE, ROLL_BACK, MAYBE_RETRAIN, EMBED_MOVIE, REMOVE_MOVIES, SWEEP, STAGE_CHALLENGER)


def send(name: str, *args: object, options: dict | None = None) -> bool:
    """Sends a task without ever failing or stalling the caller: a down or hung broker only logs a warning.

    Whatever was not sent is found again by the beat sweeper, since the change mark is in the database."""
    try:
        current_app.send_task(name, args=list(args), retry=False, **(options or {}))
        return True
    except Exception as error:  # kombu, redis and socket errors all mean "not sent now"
        logger.warning("could not send %s%s, the sweeper will retry: %s", name.rpartition(".")[2], args, error)
        return False


_sender = ThreadPoolExecutor(max_workers=1, thread_name_prefix="send")
_pending = threading.BoundedSemaphore(100)


def send_soon(name: str, *args: object, options: dict | None = None) -> None:
    """Sends from a background thread, so a page never waits on the broker (a refused Redis connection
    still costs seconds in redis-py's own retries). Beyond 100 unsent messages, new ones are dropped:
    the change marks in the database let the sweeper catch up."""
    if not _pending.acquire(blocking=False):
        logger.warning("send backlog full, leaving %s to the sweeper", name)
        return

    def background() -> None:
        try:
            send(name, *args, options=options)
        finally:
            _pending.release()

    _sender.submit(background)


def wait_for_sends(timeout: float = 30) -> None:
    """Blocks until messages handed to the background sender so far have been tried (tests, shutdown)."""
    _sender.submit(lambda: None).result(timeout=timeout)
