"""recommender/experiments.py with serving's interleaving: start, prepare the challenger beside the live run,
serve both runs' picks interleaved to the experiment's share, credit what people do, stop, make the winner live."""

import pytest
from django.contrib.auth import get_user_model

from recommender import experiments, impressions, outbox, runs, serving, tasks
from recommender.ml import interleaving
from recommender.models import Experiment, TrainingRun
from tests.conftest import requires_milvus

pytestmark = [pytest.mark.django_db, requires_milvus]


@pytest.fixture
def inline_tasks(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, tuple]]:
    """Tasks run at once in this process, by name, as a worker would run them (the broker is what is left out)."""
    sent: list[tuple[str, tuple]] = []

    def send(name: str, *args: object, options: dict | None = None) -> bool:
        sent.append((name, args))
        getattr(tasks, name.rpartition(".")[2])(*args)
        return True

    monkeypatch.setattr(outbox, "send", send)
    return sent


class Reads:
    """Counts the Milvus reads a page makes."""

    def __init__(self, store: object, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        for name in ("get_neighbors", "get_vectors", "search"):
            real = getattr(store, name)
            monkeypatch.setattr(store, name, self._counted(real))

    def _counted(self, real: object) -> object:
        def call(*args: object, **kwargs: object) -> object:
            self.count += 1
            return real(*args, **kwargs)

        return call


def _started(live: TrainingRun, challenger: TrainingRun, capture: object, share: float = 0.5) -> Experiment:
    runs.publish(live.id)
    with capture(execute=True):  # the prepare task is sent once the experiment's row commits
        experiment = experiments.start(challenger, share, "tiny")
    experiment.refresh_from_db()
    return experiment


def test_the_share_in_the_experiment_see_both_runs_picks_interleaved_for_one_more_milvus_read(
    store, trained_runs, inline_tasks, django_capture_on_commit_callbacks, monkeypatch
) -> None:
    live, _, challenger = trained_runs
    experiment = _started(live, challenger, django_capture_on_commit_callbacks)
    assert experiment.status == Experiment.Status.RUNNING and experiment.started_at
    assert runs.live_run_id() == live.id  # the challenger was written beside the live run, the alias untouched
    assert store.collection_for_run(challenger.id) in store.run_collections()

    people = list(get_user_model().objects.filter(username__startswith="u"))
    inside = [p for p in people if interleaving.in_experiment(p.id, experiment.salt, experiment.share)]
    outside = [p for p in people if p not in inside]
    assert inside and outside
    reads = Reads(store, monkeypatch)
    serving.recommend_movies_for(outside[0], 10)  # the live run's list: warms the caches the next page also uses
    before = reads.count
    alone = serving.recommend_movies_for(outside[0], 10)
    alone_reads = reads.count - before
    before = reads.count
    mixed = serving.recommend_movies_for(inside[0], 10)
    assert reads.count - before == alone_reads + 1  # the challenger's lists of the same rated movies
    assert alone.experiment_id is None and alone.teams == []
    assert mixed.experiment_id == experiment.id and len(mixed.teams) == len(mixed.items) == 10
    assert set(mixed.teams) == {interleaving.LIVE, interleaving.CHALLENGER}
    assert serving.recommend_movies_for(inside[0], 10).teams == mixed.teams  # a reload shows the same page

    runs.drop_old_collections()  # the clean-up keeps a running experiment's challenger
    assert store.collection_for_run(challenger.id) in store.run_collections()


def test_clicks_and_ratings_count_for_the_run_whose_pick_it_was_and_making_the_challenger_live_ends_it(
    store, trained_runs, inline_tasks, django_capture_on_commit_callbacks
) -> None:
    live, _, challenger = trained_runs
    experiment = _started(live, challenger, django_capture_on_commit_callbacks, share=1.0)
    people = list(get_user_model().objects.filter(username__startswith="u"))[:6]
    for n, person in enumerate(people):
        shown = impressions.shown(person, serving.recommend_movies_for(person, 10), "page")
        team = interleaving.CHALLENGER if n < 4 else interleaving.LIVE  # four prefer the challenger, two live
        position = shown.teams.index(team)
        impressions.note_click(person.id, shown.impression_id, shown.items[position].movie.id)
    impressions.flush()
    found = experiments.results(experiment)
    assert (found.impressions, found.users, found.clicks) == (6, 6, (2, 4))
    assert (found.preference.challenger_wins, found.preference.live_wins) == (4, 2)
    assert found.preference.share == pytest.approx(4 / 6)
    assert found.verdict == "No difference is clear yet."  # six people decide nothing

    experiments.make_challenger_live(experiment)
    assert runs.live_run_id() == challenger.id  # through the normal make-live path (sent as a task)
    assert ("recommender.tasks.make_live", (challenger.id, None)) in inline_tasks
    experiment.refresh_from_db()
    assert experiment.status == Experiment.Status.STOPPED and "made live" in experiment.stop_reason
    assert serving.recommend_movies_for(people[0], 10).experiment_id is None


def test_another_run_going_live_stops_the_experiment(
    store, trained_runs, inline_tasks, django_capture_on_commit_callbacks
) -> None:
    live, other, challenger = trained_runs
    experiment = _started(live, challenger, django_capture_on_commit_callbacks)
    runs.make_live(other.id)
    experiment.refresh_from_db()
    assert experiment.status == Experiment.Status.STOPPED
    assert experiment.stop_reason == f"run {other.id} went live (made live by staff)"


def test_an_experiment_is_refused_at_once_without_a_live_run_beside_another_or_against_the_live_run_itself(
    store, trained_runs, inline_tasks, django_capture_on_commit_callbacks
) -> None:
    live, _, challenger = trained_runs
    with pytest.raises(runs.Refused, match="No run is live yet"):
        experiments.start(challenger, 0.5)
    runs.publish(live.id)
    with pytest.raises(runs.Refused, match="is the live run"):
        experiments.start(live, 0.5)
    with pytest.raises(runs.Refused, match="above 0%"):
        experiments.start(challenger, 0.0)
    with django_capture_on_commit_callbacks(execute=True):
        experiments.start(challenger, 0.5)
    with pytest.raises(runs.Refused, match="already under way"):
        experiments.start(challenger, 0.5)
    assert Experiment.objects.count() == 1
    assert [name for name, _ in inline_tasks] == ["recommender.tasks.prepare_experiment"]
