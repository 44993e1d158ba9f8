"""The operator's console: training runs with metrics and plots, retrain, make live, roll back."""

from pathlib import Path

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from recommender import outbox, runs
from recommender.ml import plots
from recommender.models import RecommenderState, TrainingRun
from recommender.vector_store import VectorStoreUnavailable


def _hr(metrics: dict) -> str:
    value = metrics.get("hr@10")
    return "—" if value is None else f"{value:.4f}"


@admin.register(TrainingRun)
class TrainingRunAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "status",
        "is_live",
        "reason",
        "created_at",
        "duration",
        "num_ratings",
        "validation_hr",
        "test_hr",
        "ease_test_hr",
        "held_back",
    )
    list_filter = ("status",)
    actions = ["retrain_now", "make_live", "roll_back"]
    readonly_fields = [f.name for f in TrainingRun._meta.fields] + ["curves", "metrics"]
    fields = (
        "status",
        "reason",
        "failure_reason",
        "held_back_reason",
        "created_at",
        "started_at",
        "finished_at",
        "attempts",
        "device",
        "num_users",
        "num_movies",
        "num_ratings",
        "best_epoch",
        "seconds_to_best",
        "published_at",
        "artifact_path",
        "metrics",
        "curves",
        "config",
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        runs = list(
            TrainingRun.objects.succeeded().order_by("id").values_list("id", "test_metrics", "baseline_metrics")[:50]
        )
        extra = {"metric_history_svg": mark_safe(plots.metric_history(runs)) if len(runs) > 1 else ""}
        return super().changelist_view(request, {**(extra_context or {}), **extra})

    @admin.display(description="live", boolean=True)
    def is_live(self, run: TrainingRun) -> bool:
        return run.id == _live_run_id()

    @admin.display(description="duration")
    def duration(self, run: TrainingRun) -> str:
        return "—" if run.duration_seconds is None else f"{run.duration_seconds:.0f} s"

    @admin.display(description="val HR@10")
    def validation_hr(self, run: TrainingRun) -> str:
        return _hr(run.validation_metrics)

    @admin.display(description="test HR@10")
    def test_hr(self, run: TrainingRun) -> str:
        return _hr(run.test_metrics)

    @admin.display(description="EASE test HR@10")
    def ease_test_hr(self, run: TrainingRun) -> str:
        return _hr(run.baseline_metrics.get("ease", {}).get("test", {}))

    @admin.display(description="held back", boolean=True)
    def held_back(self, run: TrainingRun) -> bool:
        return bool(run.held_back_reason)

    @admin.display(description="loss and validation per epoch")
    def curves(self, run: TrainingRun) -> str:
        # The SVG is drawn from numbers only (no titles or user text), so it is safe to embed.
        return mark_safe(plots.training_curves(run.history)) if run.history else "no epochs yet"

    @admin.display(description="test metrics beside the baselines")
    def metrics(self, run: TrainingRun) -> str:
        rows = [("PinSage", run.validation_metrics, run.test_metrics)] + [
            (name, result.get("validation", {}), result.get("test", {}))
            for name, result in run.baseline_metrics.items()
        ]
        names = ("hr@10", "ndcg@10", "mrr@10", "recall@20", "coverage@10")
        header = "".join(format_html("<th>{}</th>", n) for n in ("model", "val HR@10", *names))
        body = "".join(
            format_html(
                "<tr><td>{}</td><td>{}</td>{}</tr>",
                name,
                _hr(validation),
                mark_safe("".join(format_html("<td>{}</td>", f"{test.get(n, 0):.4f}") for n in names)),
            )
            for name, validation, test in rows
        )
        return format_html("<table><tr>{}</tr>{}</table>", mark_safe(header), mark_safe(body))

    @admin.action(description="Retrain now", permissions=["retrain"])
    def retrain_now(self, request: HttpRequest, queryset: QuerySet) -> None:
        run = runs.request_retrain("requested in admin", requested_by=request.user)
        if run is None:
            self.message_user(request, "A retraining is already queued.", messages.WARNING)
        else:
            self.message_user(request, f"Training run {run.id} is queued.")

    @admin.action(description="Make the selected run live", permissions=["retrain"])
    def make_live(self, request: HttpRequest, queryset: QuerySet) -> None:
        """Queued for a worker: publishing computes every movie's neighbours, far more than a request may take."""
        run = queryset.first() if queryset.count() == 1 else None
        if run is None or run.status != TrainingRun.Status.SUCCEEDED:
            self.message_user(request, "Select exactly one succeeded run.", messages.ERROR)
            return
        if not run.artifact_path or not Path(run.artifact_path).is_file():
            self.message_user(
                request, f"Run {run.id}'s model file is gone (cleaned up); retrain instead.", messages.ERROR
            )
            return
        if not outbox.send(outbox.MAKE_LIVE, run.id):
            self.message_user(request, "The task queue cannot be reached; try again in a moment.", messages.ERROR)
            return
        self.message_user(request, f"Run {run.id} is being made live; it shows as live here within a minute or two.")

    @admin.action(description="Roll back to the previous live run", permissions=["retrain"])
    def roll_back(self, request: HttpRequest, queryset: QuerySet) -> None:
        if not outbox.send(outbox.ROLL_BACK):
            self.message_user(request, "The task queue cannot be reached; try again in a moment.", messages.ERROR)
            return
        self.message_user(request, "Rolling back to the previous run; it shows as live here in a few seconds.")

    def has_retrain_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("recommender.retrain")


def _live_run_id() -> int | None:
    from recommender.serving import live_run

    try:
        run = live_run()
    except VectorStoreUnavailable:
        return None
    return run.id if run else None


@admin.register(RecommenderState)
class RecommenderStateAdmin(admin.ModelAdmin):
    list_display = ("num_changes", "changed_at", "last_requested_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
