"""recommender/tasks.py, the Celery entry points: every name a message or beat sends is a registered task,
beat's schedule, and which tasks are redelivered when their worker dies."""

import pytest


@pytest.mark.django_db
def test_the_beat_schedule_sweeps_retrains_nightly_and_collects_garbage(settings: object) -> None:
    from celery.schedules import crontab

    from recsite.celery import app

    app.loader.import_default_modules()
    schedule = settings.CELERY_BEAT_SCHEDULE
    # Each entry names a task the workers really have (a rename would leave beat sending into the void).
    assert all(entry["task"] in app.tasks for entry in schedule.values()), sorted(e["task"] for e in schedule.values())
    by_task = {entry["task"]: entry["schedule"] for entry in schedule.values()}
    assert 0 < float(by_task["recommender.tasks.sweep"]) <= 600
    assert isinstance(by_task["recommender.tasks.nightly_retrain"], crontab)
    assert isinstance(by_task["recommender.tasks.drop_old_collections"], crontab)


@pytest.mark.django_db
def test_only_training_is_redelivered_when_its_worker_dies(settings: object) -> None:
    from recsite.celery import app

    assert settings.CELERY_TASK_REJECT_ON_WORKER_LOST is False
    app.loader.import_default_modules()
    assert app.tasks["recommender.tasks.train_model"].reject_on_worker_lost is True
    for name in ("publish_embeddings", "embed_movie", "remove_movies", "sweep"):
        task = app.tasks[f"recommender.tasks.{name}"]
        assert not (task.reject_on_worker_lost or app.conf.task_reject_on_worker_lost), name


def test_every_message_names_a_registered_task() -> None:
    from recommender import outbox
    from recsite.celery import app

    app.loader.import_default_modules()
    assert set(outbox.ALL) <= set(app.tasks)
    assert {name for name in app.tasks if name.startswith("recommender.tasks.")} - set(outbox.ALL) == {
        "recommender.tasks.nightly_retrain",  # sent by beat only
        "recommender.tasks.drop_old_collections",
        "recommender.tasks.prune_impressions",
    }
