"""manage.py publish_embeddings: put a training run's movie embeddings live in Milvus."""

from argparse import ArgumentParser

from django.core.management.base import BaseCommand, CommandError

from recommender import runs
from recommender.models import TrainingRun
from recommender.serving import live_run
from recommender.vector_store import PublishFailed, VectorStoreUnavailable
from recommender.vectors import VectorsBusy


class Command(BaseCommand):
    help = (
        "Write a succeeded training run's embeddings to a new Milvus collection, check it, then switch the "
        "'movies' alias to it. The previous collection is kept for rollback; older ones are dropped."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("run", nargs="?", type=int, help="training run id (default: the latest that succeeded)")
        parser.add_argument("--if-needed", action="store_true", help="do nothing when that run is already live")

    def handle(self, *args: object, **options: object) -> None:
        succeeded = TrainingRun.objects.succeeded()
        run = succeeded.filter(id=options["run"]).first() if options["run"] else succeeded.first()
        if run is None:
            raise CommandError("no succeeded training run to publish; train one with manage.py train_recommender")
        try:
            current = live_run()
            if options["if_needed"] and current and current.id == run.id:
                self.stdout.write(f"Run {run.id} is already live.")
                return
            # A run named on the command line is the operator's explicit choice, like staff's "Make live";
            # the latest run goes through the pipeline's publish, which never puts an older run back.
            name = runs.make_live(run.id) if options["run"] else runs.publish(run.id)
        except runs.Refused as refusal:
            self.stdout.write(str(refusal))
            return
        except (VectorStoreUnavailable, PublishFailed, VectorsBusy, ValueError) as error:
            raise CommandError(str(error)) from error
        if name is None:
            run.refresh_from_db()
            self.stdout.write(f"Run {run.id} was not published: {run.held_back_reason}")
            return
        self.stdout.write(f"Run {run.id} is live as {name}.")
