"""The operator's console: training runs with metrics and plots, retrain, make live, roll back; experiments that
compare the live run with a challenger on people's clicks and ratings."""

import json
from collections.abc import Callable
from typing import Any, cast

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.actions import delete_selected
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from recommender import experiments, outbox, runs
from recommender.ml import interleaving, plots
from recommender.ml.config import InvalidSetting, check_overrides
from recommender.models import Experiment, ImpressionDay, LiveChange, RecommenderState, TrainingRun
from recommender.progress import active_progress, training_progress
from recommender.serving import live_run, serving_status
from recommender.vector_store import VectorStoreUnavailable


class RetrainWithSettingsForm(forms.Form):
    """Staff's overrides of the training settings for one run, checked as RECOMMENDER_TRAINING_CONFIG is."""

    settings = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 8, "cols": 80, "spellcheck": "false"}),
        help_text='JSON, merged deeply over RECOMMENDER_TRAINING_CONFIG: {"epochs": 10, "walk": {"num_layers": 1}}',
    )

    def clean_settings(self) -> dict[str, Any]:
        try:
            overrides = json.loads(self.cleaned_data["settings"])
        except json.JSONDecodeError as error:
            raise forms.ValidationError(f"Not JSON: {error}") from error
        try:
            check_overrides(overrides)
        except InvalidSetting as error:  # names the setting: "unknown training setting 'epoch' (known here: ...)"
            raise forms.ValidationError(str(error)) from error
        return cast(dict[str, Any], overrides)


def _figure(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


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
        "best_baseline_test_hr",
        "held_back",
    )
    list_filter = ("status",)
    actions = ["retrain_now", "make_live", "roll_back"]
    readonly_fields = [f.name for f in TrainingRun._meta.fields] + ["curves", "metrics", "progress", "weights_kept"]
    fields = (
        "status",
        "progress",
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
        "weights_kept",
        "seconds_to_best",
        "published_at",
        "artifact_path",
        "metrics",
        "curves",
        "config",
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def get_urls(self) -> list[URLPattern]:
        own = [
            path(
                "retrain-with-settings/",
                self.admin_site.admin_view(self.retrain_with_settings),
                name="recommender_trainingrun_retrain_with_settings",
            )
        ]
        return own + super().get_urls()

    def retrain_with_settings(self, request: HttpRequest) -> HttpResponse:
        """A run queued with staff's own settings; an unknown setting or a value of the wrong type is refused
        in the form, naming it, and nothing is queued."""
        if not self.has_retrain_permission(request):
            raise PermissionDenied
        form = RetrainWithSettingsForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            run = runs.request_retrain(
                "requested in admin with settings", cast(User, request.user), form.cleaned_data["settings"]
            )
            if run is None:
                self.message_user(request, "A retraining is already queued.", messages.WARNING)
            else:
                self.message_user(request, f"Training run {run.id} is queued with these settings.")
            return HttpResponseRedirect(reverse("admin:recommender_trainingrun_changelist"))
        context = {**self.admin_site.each_context(request), "form": form, "title": "Retrain with settings"}
        return render(request, "admin/recommender/trainingrun/retrain_with_settings.html", context)

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        runs = list(
            TrainingRun.objects.succeeded().order_by("id").values_list("id", "test_metrics", "baseline_metrics")[:50]
        )
        extra = {"metric_history_svg": mark_safe(plots.metric_history(runs)) if len(runs) > 1 else ""}
        if request.method == "GET":  # once per look at the list, not again on an action's own render
            status = serving_status()
            self.message_user(request, f"Now: {status}.", messages.SUCCESS if status.can_serve else messages.ERROR)
            for progress in active_progress():
                self.message_user(request, f"Training: {progress}.", messages.INFO)
        return super().changelist_view(request, {**(extra_context or {}), **extra})

    @admin.display(description="progress")
    def progress(self, run: TrainingRun) -> str:
        return str(training_progress(run))

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

    @admin.display(description="strongest baseline, test HR@10")
    def best_baseline_test_hr(self, run: TrainingRun) -> str:
        """The run's own strongest baseline (by test HR@10, on the same split), named."""
        scored = [(r.get("test", {}).get("hr@10"), name) for name, r in run.baseline_metrics.items()]
        scored = [(hr, name) for hr, name in scored if hr is not None]
        if not scored:
            return "—"
        hr, name = max(scored)
        return f"{hr:.4f} ({name})"

    @admin.display(description="weights kept")
    def weights_kept(self, run: TrainingRun) -> str:
        """Which network the run serves: its best epoch's, or the mean of several epochs' that validated better."""
        if run.best_epoch is None:
            return "—"
        if not run.averaged_epochs:
            return f"epoch {run.best_epoch}'s"
        *first, last = run.averaged_epochs
        return (
            f"the mean of epochs {', '.join(map(str, first))} and {last} (validated better than epoch {run.best_epoch})"
        )

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
        if run.live_on_split:  # what the publish gate compared with: validation only
            rows.append((f"live run {run.live_on_split['run']}, on this split", run.live_on_split["validation"], {}))
        names = ("hr@10", "ndcg@10", "mrr@10", "recall@20", "coverage@10", "diversity@10")
        header = "".join(format_html("<th>{}</th>", n) for n in ("model", "val HR@10", *names))
        body = "".join(
            format_html(
                "<tr><td>{}</td><td>{}</td>{}</tr>",
                name,
                _hr(validation),
                mark_safe("".join(format_html("<td>{}</td>", _figure(test.get(n))) for n in names)),
            )
            for name, validation, test in rows
        )
        return format_html("<table><tr>{}</tr>{}</table>", mark_safe(header), mark_safe(body))

    @admin.action(description="Retrain now", permissions=["retrain"])
    def retrain_now(self, request: HttpRequest, queryset: QuerySet) -> None:
        run = runs.request_retrain("requested in admin", requested_by=cast(User, request.user))  # staff, logged in
        if run is None:
            self.message_user(request, "A retraining is already queued.", messages.WARNING)
        else:
            self.message_user(request, f"Training run {run.id} is queued.")

    @admin.action(description="Make the selected run live", permissions=["retrain"])
    def make_live(self, request: HttpRequest, queryset: QuerySet) -> None:
        """Checked here, queued for a worker: publishing computes every movie's neighbours, far more than a
        request may take."""
        run = queryset.first() if queryset.count() == 1 else None
        if run is None:
            self.message_user(request, "Select exactly one succeeded run.", messages.ERROR)
            return
        try:
            runs.check_make_live(run)
        except runs.Refused as refusal:
            self.message_user(request, str(refusal), messages.WARNING)
            return
        except VectorStoreUnavailable as error:
            self.message_user(request, f"Milvus cannot be asked which run is live: {error}", messages.ERROR)
            return
        if not outbox.send(outbox.MAKE_LIVE, run.id, request.user.id):
            self.message_user(request, "The task queue cannot be reached; try again in a moment.", messages.ERROR)
            return
        self.message_user(request, f"Run {run.id} is being made live; it shows as live here within a minute or two.")

    @admin.action(description="Roll back to the previous live run", permissions=["retrain"])
    def roll_back(self, request: HttpRequest, queryset: QuerySet) -> None:
        try:
            target = runs.rollback_target()
        except VectorStoreUnavailable as error:
            self.message_user(request, f"Milvus cannot be asked which runs it keeps: {error}", messages.ERROR)
            return
        if target is None:
            self.message_user(request, "There is no earlier run to roll back to.", messages.WARNING)
            return
        if not outbox.send(outbox.ROLL_BACK, request.user.id):
            self.message_user(request, "The task queue cannot be reached; try again in a moment.", messages.ERROR)
            return
        self.message_user(request, f"Rolling back to run {target.id}; it shows as live here in a few seconds.")

    def has_retrain_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("recommender.retrain")

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions: dict[str, Any] = super().get_actions(request)  # the stubs allow None values; Django gives none
        if "delete_selected" in actions:
            actions["delete_selected"] = (self.delete_unprotected, *actions["delete_selected"][1:])
        return actions

    def delete_unprotected(self, admin_: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet) -> object:
        """Django's bulk delete, refused at once (before its confirmation page) for runs that must stay."""
        why = _undeletable(set(queryset.values_list("id", flat=True)))
        if why:
            self.message_user(request, why, messages.ERROR)
            return None
        return delete_selected(admin_, request, queryset)

    def has_delete_permission(self, request: HttpRequest, obj: TrainingRun | None = None) -> bool:
        return super().has_delete_permission(request, obj) and (obj is None or not _undeletable({obj.id}))

    def delete_view(self, request: HttpRequest, object_id: str, extra_context: dict | None = None) -> HttpResponse:
        why = _undeletable({int(object_id)}) if str(object_id).isdigit() else ""
        if why:
            self.message_user(request, why, messages.ERROR)
            return HttpResponseRedirect(reverse("admin:recommender_trainingrun_change", args=[object_id]))
        return super().delete_view(request, object_id, extra_context)


def _undeletable(run_ids: set[int]) -> str:
    """Why some of these runs must not be deleted ("" when none): the live run, its rollback and the newest
    published run keep the collection pages read or would read, and a running run has a worker on it."""
    running = set(
        TrainingRun.objects.filter(status=TrainingRun.Status.RUNNING, id__in=run_ids).values_list("id", flat=True)
    )
    try:
        protected = runs.protected_runs()
    except VectorStoreUnavailable:  # the recorded live run and the newest published, from the database alone
        newest = TrainingRun.objects.filter(published_at__isnull=False).order_by("-id").values_list("id", flat=True)
        protected = {r for r in (_recorded_live_run_id(), newest.first()) if r}
    reasons = [f"run {r} is running" for r in sorted(run_ids & running)]
    reasons += [f"run {r} is live, its rollback or the newest published run" for r in sorted(run_ids & protected)]
    return f"Not deleted: {'; '.join(reasons)}." if reasons else ""


def _recorded_live_run_id() -> int | None:
    return RecommenderState.current().live_run_id


def _live_run_id() -> int | None:
    """The run the alias points to (cached briefly); while Milvus cannot be asked, the one recorded at the last move."""
    try:
        run = live_run()
    except VectorStoreUnavailable:
        return _recorded_live_run_id()
    return run.id if run else None


@admin.register(RecommenderState)
class RecommenderStateAdmin(admin.ModelAdmin):
    list_display = ("num_changes", "changed_at", "last_requested_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(LiveChange)
class LiveChangeAdmin(admin.ModelAdmin):
    """Every move of the alias: read-only history of what went live, when, by whom."""

    list_display = ("at", "action", "from_run_id", "to_run_id", "by")
    list_filter = ("action",)
    list_select_related = ("by",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: LiveChange | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: LiveChange | None = None) -> bool:
        return False


class StartExperimentForm(forms.Form):
    """A challenger among the succeeded runs that still have their model file, and the share of people."""

    challenger = forms.ModelChoiceField(
        queryset=TrainingRun.objects.succeeded().exclude(artifact_path="").order_by("-id"),
        help_text="Its collection is written beside the live one, then a share of people see both runs' picks "
        "interleaved.",
    )
    share_percent = forms.IntegerField(min_value=1, max_value=100, initial=50, label="Share of signed-in people (%)")
    name = forms.CharField(max_length=100, required=False)


def _interval(low: float | None, high: float | None) -> str:
    return "—" if low is None or high is None else f"{low:.1%} to {high:.1%}"


@admin.register(Experiment)
class ExperimentAdmin(admin.ModelAdmin):
    """Interleaved comparisons of the live run and a challenger: start, watch, stop, make the winner live."""

    list_display = ("name", "status", "live_run_id", "challenger_run_id", "share", "started_at", "stop_reason")
    list_filter = ("status",)
    readonly_fields = [f.name for f in Experiment._meta.fields] + ["figures"]
    change_form_template = "admin/recommender/experiment/change_form.html"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("recommender.retrain")

    def has_change_permission(self, request: HttpRequest, obj: Experiment | None = None) -> bool:
        return request.user.has_perm("recommender.retrain")

    def has_delete_permission(self, request: HttpRequest, obj: Experiment | None = None) -> bool:
        return False  # what an experiment found stays on record

    def get_urls(self) -> list[URLPattern]:
        own = [
            path(
                "<int:experiment_id>/stop/", self.admin_site.admin_view(self.stop), name="recommender_experiment_stop"
            ),
            path(
                "<int:experiment_id>/make-challenger-live/",
                self.admin_site.admin_view(self.make_challenger_live),
                name="recommender_experiment_make_challenger_live",
            ),
        ]
        return own + super().get_urls()

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: dict | None = None) -> HttpResponse:
        """Starts one: refused at once, with the reason, when another is under way or no run is live."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = StartExperimentForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                experiment = experiments.start(
                    form.cleaned_data["challenger"],
                    form.cleaned_data["share_percent"] / 100,
                    form.cleaned_data["name"],
                    cast(User, request.user),
                )
            except runs.Refused as refusal:
                form.add_error(None, str(refusal))
            except VectorStoreUnavailable as error:
                form.add_error(None, f"Milvus cannot be asked which run is live: {error}")
            else:
                self.message_user(
                    request,
                    f"Experiment started: run {experiment.challenger_run_id}'s collection is being written beside "
                    "the live one; it runs as soon as that is done (a minute or two).",
                )
                return HttpResponseRedirect(reverse("admin:recommender_experiment_change", args=[experiment.id]))
        context = {**self.admin_site.each_context(request), "form": form, "title": "Start an experiment"}
        return render(request, "admin/recommender/experiment/start.html", context)

    @admin.display(description="what people did")
    def figures(self, experiment: Experiment) -> str:
        found = experiments.results(experiment)
        p = found.preference
        share = "—" if p.share is None else f"{p.share:.1%}"
        planned = interleaving.days_needed(p, found.days_elapsed, power=0.8) if p.low is not None else None
        if p.low is None:  # one person, or none, with a decisive impression: no interval, no forecast
            needed = "more people must click or rate before anything can be said"
        elif p.is_decided:
            needed = "the interval excludes 50% now"
        elif planned == 0:
            needed = "enough to have found a 55/45 preference, so there is no effect that large"
        else:
            needed = (
                f"about {planned:.1f} more days at this traffic for 80% power; decide then, not at the first "
                "clear interval: read daily, A/A experiments would show a false winner 20% of the time "
                "(bench/interleaving)"
            )
        return format_html(
            "<table><tr><th></th><th>live run {}</th><th>challenger, run {}</th></tr>"
            "<tr><th>credited clicks</th><td>{}</td><td>{}</td></tr>"
            "<tr><th>credited ratings</th><td>{}</td><td>{}</td></tr>"
            "<tr><th>not interested</th><td>{}</td><td>{}</td></tr>"
            "<tr><th>impressions won</th><td>{}</td><td>{}</td></tr></table>"
            "<p>{} interleaved impression{} from {} {}, {} tied. Challenger's preference share: <strong>{}</strong>"
            " (95% interval {}). <strong>{}</strong> Data needed: {}.</p>",
            experiment.live_run_id,
            experiment.challenger_run_id,
            *found.clicks,
            *found.ratings,
            *found.hidden,
            p.live_wins,
            p.challenger_wins,
            found.impressions,
            "" if found.impressions == 1 else "s",
            found.users,
            "person" if found.users == 1 else "people",
            p.ties,
            share,
            _interval(p.low, p.high),
            found.verdict,
            needed,
        )

    def _act(self, request: HttpRequest, experiment_id: int, act: Callable[[Experiment], str]) -> HttpResponse:
        if request.method != "POST" or not self.has_change_permission(request):
            raise PermissionDenied
        experiment = Experiment.objects.select_related("challenger_run").get(id=experiment_id)
        try:
            self.message_user(request, act(experiment))
        except runs.Refused as refusal:
            self.message_user(request, str(refusal), messages.WARNING)
        except VectorStoreUnavailable as error:
            self.message_user(request, f"Milvus cannot be asked which run is live: {error}", messages.ERROR)
        return HttpResponseRedirect(reverse("admin:recommender_experiment_change", args=[experiment_id]))

    def stop(self, request: HttpRequest, experiment_id: int) -> HttpResponse:
        def act(experiment: Experiment) -> str:
            stopped = experiments.stop(experiment.id, f"stopped by {request.user.get_username()}")
            return "Stopped; pages serve the live run alone." if stopped else "It had stopped already."

        return self._act(request, experiment_id, act)

    def make_challenger_live(self, request: HttpRequest, experiment_id: int) -> HttpResponse:
        def act(experiment: Experiment) -> str:
            experiments.make_challenger_live(experiment, cast(User, request.user))
            return (
                f"Stopped; run {experiment.challenger_run_id} is being made live and shows as live on the training "
                "runs page within a minute or two."
            )

        return self._act(request, experiment_id, act)


@admin.register(ImpressionDay)
class ImpressionDayAdmin(admin.ModelAdmin):
    """Daily counts the impression log keeps after its raw rows are pruned: lists shown and what people did."""

    list_display = ("day", "surface", "source", "run_id", "impressions", "clicks", "ratings", "hidden")
    list_filter = ("surface", "source")
    date_hierarchy = "day"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: ImpressionDay | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: ImpressionDay | None = None) -> bool:
        return False
