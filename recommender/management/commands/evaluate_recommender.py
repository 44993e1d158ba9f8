"""manage.py evaluate_recommender: print a training run's metrics beside the baselines'."""

from argparse import ArgumentParser

from django.core.management.base import BaseCommand, CommandError

from recommender.models import TrainingRun

METRICS = ("hr@10", "ndcg@10", "mrr@10", "recall@20", "coverage@10")
LABELS = {
    "most_rated": "Most rated",
    "popularity": "Most rated",
    "itemknn": "ItemKNN",
    "ease": "EASE",
    "ease_recency": "EASE+recency",
}


def metrics_table(run: TrainingRun) -> str:
    header = f"{'model':14} {'val HR@10':>10} " + " ".join(f"{m.upper():>11}" for m in METRICS)
    lines = [
        f"Training run {run.id}: {run.num_ratings} ratings, {run.num_users} users, {run.num_movies} movies; "
        f"best epoch {run.best_epoch} of {len(run.history)}; test metrics, full ranking",
        header,
        "-" * len(header),
    ]
    rows = [("PinSage", run.validation_metrics, run.test_metrics)]
    rows += [(LABELS.get(name, name), r["validation"], r["test"]) for name, r in run.baseline_metrics.items()]
    for name, validation, test in rows:
        lines.append(
            f"{name:14} {validation.get('hr@10', 0):>10.4f} " + " ".join(f"{test.get(m, 0):>11.4f}" for m in METRICS)
        )
    return "\n".join(lines)


class Command(BaseCommand):
    help = "Print the metrics table (PinSage and baselines, validation and test) of a training run."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("run", nargs="?", type=int, help="training run id (default: the latest that succeeded)")

    def handle(self, *args: object, **options: object) -> None:
        runs = TrainingRun.objects.succeeded()
        run = runs.filter(id=options["run"]).first() if options["run"] else runs.first()
        if run is None:
            raise CommandError(
                "no succeeded training run"
                + (f" with id {options['run']}" if options["run"] else "; train one with manage.py train_recommender")
            )
        self.stdout.write(metrics_table(run))
