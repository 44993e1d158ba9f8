"""Loaded into a test worker with --include: a run whose reason asks for it dies like an OOM-killed child,
or hangs in native code that never returns to Python (deaf to the soft time limit's signal). The reason, not
the config: a training config refuses settings that do not exist."""

import os
import signal
import time

from recommender import runs

_train = runs._train


def _train_or_die(run: object, on_epoch: object, with_baselines: bool) -> None:
    if run.reason == "simulate_oom":
        os._exit(137)
    if run.reason == "simulate_stuck":
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})  # Celery's soft limit arrives as SIGUSR1
        time.sleep(3600)
    _train(run, on_epoch, with_baselines)


runs._train = _train_or_die
