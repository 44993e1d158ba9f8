"""manage.py recommender_status: what Milvus serves now, and the runs behind it; with --until-live, the first
model's progress as it trains (what scripts/run prints on a first start)."""

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from recommender.models import LiveChange, TrainingRun
from recommender.progress import active_progress
from recommender.serving import forget_live_run, serving_status, vector_store
from recommender.vector_store import VectorStoreUnavailable


class Command(BaseCommand):
    help = "Show the live collection, the run collections kept in Milvus and the latest training runs."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--until-live",
            action="store_true",
            help="Print the training's progress and an estimate of when picks will be live whenever it changes, "
            "until a run is live; then say so and exit.",
        )
        parser.add_argument("--every", type=float, default=15.0, help="Seconds between looks (--until-live).")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["until_live"]:
            self.follow_until_live(options["every"])
            return
        store = vector_store()
        status = serving_status()
        self.stdout.write((self.style.SUCCESS if status.can_serve else self.style.ERROR)(f"Now: {status}."))
        for progress in active_progress():
            self.stdout.write(f"Training: {progress}.")
        try:
            live = store.live_collection()
            collections = store.run_collections()
            self.stdout.write(f"Milvus {store.uri}: alias '{store.alias}' -> {live or 'nothing yet'}")
            for name in collections:
                marker = "live" if name == live else "kept"
                self.stdout.write(f"  {name:20} {store.count(name):>8} vectors  {marker}")
        except VectorStoreUnavailable as error:
            live = None
            self.stdout.write(self.style.WARNING(f"Milvus unreachable: {error}"))
        live_id = store.run_of_collection(live) if live else None
        self.stdout.write("Latest training runs:")
        for run in TrainingRun.objects.all()[:10]:
            hr = run.test_metrics.get("hr@10")
            self.stdout.write(
                f"  run {run.id:<5} {run.status:10} {run.created_at:%Y-%m-%d %H:%M}  "
                f"test HR@10 {hr if hr is None else round(hr, 4)}{'  LIVE' if run.id == live_id else ''}"
            )
        changes = LiveChange.objects.select_related("by")[:5]
        if changes:
            self.stdout.write("Latest changes of the live run:")
        for change in changes:
            who = f" by {change.by.username}" if change.by else ""
            self.stdout.write(f"  {change.at:%Y-%m-%d %H:%M}  {change}{who}")

    def follow_until_live(self, every: float) -> None:
        said = ""
        while True:
            forget_live_run()
            status = serving_status()
            if status.can_serve and status.live_run_id:
                self.stdout.write(
                    self.style.SUCCESS(f"Personal picks from the model are live (run {status.live_run_id}).")
                )
                return
            lines = [f"First model: {p}." for p in active_progress()] or ["First model: waiting for a training run."]
            text = "\n".join(lines)
            if text != said:
                self.stdout.write(text)
                said = text
            time.sleep(every)
