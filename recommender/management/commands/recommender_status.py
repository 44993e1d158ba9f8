"""manage.py recommender_status: what Milvus serves now, and the runs behind it."""

from django.core.management.base import BaseCommand

from recommender.models import LiveChange, TrainingRun
from recommender.serving import serving_status, vector_store
from recommender.vector_store import VectorStoreUnavailable


class Command(BaseCommand):
    help = "Show the live collection, the run collections kept in Milvus and the latest training runs."

    def handle(self, *args: object, **options: object) -> None:
        store = vector_store()
        status = serving_status()
        self.stdout.write((self.style.SUCCESS if status.can_serve else self.style.ERROR)(f"Now: {status}."))
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
