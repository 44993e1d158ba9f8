"""manage.py train_recommender: train PinSage on the ratings in the database and report its metrics."""

import sys
from argparse import ArgumentParser
from typing import Any, cast

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from movies.models import Rating
from recommender import runs
from recommender.management.commands.evaluate_recommender import metrics_table
from recommender.models import TrainingRun


class Command(BaseCommand):
    help = (
        "Train PinSage movie embeddings on every rating in the database (the pipeline's config, "
        "RECOMMENDER_TRAINING_CONFIG, under these flags), evaluate them against most-rated, ItemKNN and "
        "EASE on a leave-last-out split, and save the run's artifact."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--epochs", type=int, help="maximum epochs (early stopping on validation HR@10)")
        parser.add_argument("--batches-per-epoch", type=int)
        parser.add_argument("--device", choices=["cpu", "cuda", "auto"], help="default: cpu")
        parser.add_argument("--seed", type=int, help="the same seed and data give the same run")
        parser.add_argument("--hidden-dim", type=int)
        parser.add_argument("--learning-rate", type=float)
        parser.add_argument("--min-stars", type=float, help="ratings below this are not graph edges")
        parser.add_argument("--star-power", type=float, help="edge weight (stars/5)**power")
        parser.add_argument("--temperature", type=float, help="of the softmax over every movie")
        parser.add_argument("--no-baselines", action="store_true", help="skip fitting the baselines")
        parser.add_argument(
            "--if-needed",
            action="store_true",
            help="do nothing when a succeeded run already used the same number of ratings",
        )
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["if_needed"]:
            latest = TrainingRun.objects.succeeded().first()
            if latest and latest.num_ratings == Rating.objects.count():
                self.stdout.write(f"Run {latest.id} already covers the {latest.num_ratings} ratings; not retraining.")
                return
        run = runs.create_training_run(self._config(options))
        bar = None
        if not options["no_progress"] and sys.stderr.isatty():
            bar = tqdm(
                total=run.training_config.epochs,
                desc=f"run {run.id}",
                unit="epoch",
                file=sys.stderr,
            )

        def progress(row: dict) -> None:
            if bar:
                bar.update(1)
                bar.set_postfix(loss=f"{row['loss']:.4f}", val_hr10=f"{row['validation']['hr@10']:.4f}")
            elif options["verbosity"] > 1:
                self.stderr.write(
                    f"epoch {row['epoch']}: loss {row['loss']:.4f}, val HR@10 {row['validation']['hr@10']:.4f}"
                )

        run = cast(  # never None with fail_if_busy
            TrainingRun,
            runs.train_model(run.id, progress, with_baselines=not options["no_baselines"], fail_if_busy=True),
        )
        if bar:
            bar.close()
        if run.status != TrainingRun.Status.SUCCEEDED:
            raise CommandError(f"training run {run.id} failed: {run.failure_reason}")
        if options["verbosity"] > 0:
            self.stdout.write(metrics_table(run))

    def _config(self, options: dict) -> dict:
        config: dict = {}
        for option in ("epochs", "batches_per_epoch", "device", "seed", "hidden_dim", "learning_rate", "temperature"):
            if options[option] is not None:
                config[option] = options[option]
        edges = {key: options[key] for key in ("min_stars", "star_power") if options[key] is not None}
        if edges:
            config["edges"] = edges
        return config
