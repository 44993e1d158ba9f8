"""Interleaved comparisons of the live run and a challenger: starting one, its life, and what it found.

Staff start an experiment in the admin with a challenger run. A worker writes the challenger's collection
beside the live one (runs.stage_challenger), then the experiment runs: pages interleave the two runs' lists
for its share of signed-in people (serving._interleaved), the impression log records which run put each pick
where (recommender.impressions), and `results` credits clicks and ratings to the run whose pick it was. It
stops when staff stop it, make either run live, or another run goes live (runs._record_live_change)."""

import secrets
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from recommender import outbox, runs, serving
from recommender.ml import interleaving
from recommender.models import Experiment, Impression, Interaction, TrainingRun

CREDITED = (Interaction.Kind.CLICK, Interaction.Kind.RATING)  # what counts for a run; a hide counts against none


def start(challenger: TrainingRun, share: float, name: str = "", by: User | None = None) -> Experiment:
    """Records the experiment and queues the writing of the challenger's collection; Refused (at once, nothing
    queued) when one is already under way, nothing is live, or the challenger cannot be served."""
    if not 0 < share <= 1:
        raise runs.Refused("The share of people in the experiment must be above 0% and at most 100%.")
    if Experiment.objects.filter(status__in=runs.ACTIVE_EXPERIMENT).exists():
        raise runs.Refused("An experiment is already under way; stop it before starting another.")
    live_id = runs.live_run_id()
    if live_id is None:
        raise runs.Refused("No run is live yet: an experiment compares the live run with a challenger.")
    if challenger.id == live_id:
        raise runs.Refused(f"Run {challenger.id} is the live run; choose another run as the challenger.")
    runs.check_publishable(challenger)
    with transaction.atomic():
        experiment = Experiment.objects.create(
            name=name or f"Run {challenger.id} against run {live_id}",
            live_run_id=live_id,
            challenger_run=challenger,
            share=share,
            salt=secrets.token_hex(8),
            created_by=by,
        )
        transaction.on_commit(lambda: outbox.send(outbox.STAGE_CHALLENGER, experiment.id))
    return experiment


def prepare(experiment_id: int) -> None:
    """The worker's part (safe to retry): the challenger's collection written, then the experiment runs, unless
    it was stopped meanwhile or the live run changed under it."""
    experiment = Experiment.objects.filter(id=experiment_id, status=Experiment.Status.PREPARING).first()
    if experiment is None:
        return
    runs.stage_challenger(experiment.challenger_run_id)
    if runs.live_run_id() != experiment.live_run_id:
        stop(experiment.id, "the live run changed while the challenger was being prepared")
        return
    Experiment.objects.filter(id=experiment.id, status=Experiment.Status.PREPARING).update(
        status=Experiment.Status.RUNNING, started_at=timezone.now()
    )
    serving.forget_experiment()


def stop(experiment_id: int, reason: str) -> bool:
    """Stops it (idempotent): pages serve the live run alone again within EXPERIMENT_CACHE_SECONDS."""
    stopped = Experiment.objects.filter(id=experiment_id, status__in=runs.ACTIVE_EXPERIMENT).update(
        status=Experiment.Status.STOPPED, stopped_at=timezone.now(), stop_reason=reason[:200]
    )
    serving.forget_experiment()
    return bool(stopped)


def make_challenger_live(experiment: Experiment, by: User | None = None) -> None:
    """Stops the experiment and makes its challenger live through the normal path (checked now, published by
    a worker); Refused as make_live would be."""
    runs.check_make_live(experiment.challenger_run)
    stop(experiment.id, f"run {experiment.challenger_run_id} is being made live")
    if not outbox.send(outbox.MAKE_LIVE, experiment.challenger_run_id, by.id if by else None):
        raise runs.Refused("The task queue cannot be reached; try again in a moment.")


@dataclass(frozen=True)
class Results:
    """What an experiment's interleaved impressions say, per run and as a preference."""

    impressions: int
    users: int
    clicks: tuple[int, int]  # credited to (live, challenger)
    ratings: tuple[int, int]
    hidden: tuple[int, int]  # "not interested" on each run's picks (not credited: shown beside the rest)
    preference: interleaving.Preference
    days_elapsed: float
    days_needed: float | None

    @property
    def verdict(self) -> str:
        p = self.preference
        if p.share is None:
            return "No credited clicks or ratings yet."
        if p.low is not None and p.low > 0.5:
            return "People prefer the challenger."
        if p.high is not None and p.high < 0.5:
            return "People prefer the live run."
        return "No difference is clear yet."


def results(experiment: Experiment, now: datetime | None = None) -> Results:
    """Each interleaved impression's outcome from the credited interactions on it (interleaving.outcome), the
    decisive ones counted per person, the preference share with its interval over people."""
    rows = list(
        Impression.objects.filter(experiment=experiment)
        .exclude(teams=[])
        .values_list("id", "user_id", "movies", "teams")
    )
    acted: dict[int, list[tuple[int, str]]] = {}
    for impression_id, movie_id, kind in Interaction.objects.filter(impression_id__in=[r[0] for r in rows]).values_list(
        "impression_id", "movie_id", "kind"
    ):
        acted.setdefault(impression_id, []).append((movie_id, kind))
    per_user: dict[int, list[int]] = {}  # user -> [live wins, challenger wins, ties]
    clicks, ratings, hidden = [0, 0], [0, 0], [0, 0]
    for impression_id, user_id, movies, teams in rows:
        position = {movie: i for i, movie in enumerate(movies)}
        credited = []
        for movie_id, kind in acted.get(impression_id, []):
            if movie_id not in position:
                continue
            team = teams[position[movie_id]]
            tally = clicks if kind == Interaction.Kind.CLICK else ratings if kind == Interaction.Kind.RATING else hidden
            tally[team] += 1
            if kind in CREDITED:
                credited.append(position[movie_id])
        won = interleaving.outcome(teams, credited)
        counts = per_user.setdefault(user_id or 0, [0, 0, 0])
        counts[{-1: 0, 1: 1, 0: 2}[won]] += 1
    table = np.array(list(per_user.values()), dtype=np.int64).reshape(-1, 3)
    preference = interleaving.preference(table[:, 0], table[:, 1], table[:, 2])
    end = experiment.stopped_at or (now or timezone.now())
    days = max((end - (experiment.started_at or experiment.created_at)).total_seconds() / 86400, 0.0)
    return Results(
        impressions=len(rows),
        users=len(per_user),
        clicks=(clicks[0], clicks[1]),
        ratings=(ratings[0], ratings[1]),
        hidden=(hidden[0], hidden[1]),
        preference=preference,
        days_elapsed=days,
        days_needed=interleaving.days_needed(preference, days),
    )
