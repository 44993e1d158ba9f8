"""TrainingRun: one PinSage training, its data snapshot, metrics, artifact and status."""

from django.conf import settings
from django.db import models

from recommender.ml.config import TrainingConfig


class TrainingRunQuerySet(models.QuerySet):
    def succeeded(self) -> "TrainingRunQuerySet":
        return self.filter(status=TrainingRun.Status.SUCCEEDED)

    def active(self) -> "TrainingRunQuerySet":
        return self.filter(status__in=[TrainingRun.Status.QUEUED, TrainingRun.Status.RUNNING])


class TrainingRun(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True)
    config = models.JSONField(default=dict, blank=True)
    failure_reason = models.TextField(blank=True)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    num_users = models.PositiveIntegerField(null=True, blank=True)
    num_movies = models.PositiveIntegerField(null=True, blank=True)
    num_ratings = models.PositiveIntegerField(null=True, blank=True)
    device = models.CharField(max_length=16, blank=True)
    history = models.JSONField(default=list, blank=True, help_text="Per epoch: loss, seconds, validation metrics.")
    best_epoch = models.PositiveIntegerField(null=True, blank=True)
    seconds_to_best = models.FloatField(null=True, blank=True)
    averaged_epochs = models.JSONField(
        default=list, blank=True, help_text="The epochs whose mean weights were kept, when that mean validated better."
    )
    validation_metrics = models.JSONField(default=dict, blank=True)
    test_metrics = models.JSONField(default=dict, blank=True)
    baseline_metrics = models.JSONField(default=dict, blank=True)
    live_on_split = models.JSONField(
        default=dict, blank=True, help_text="The live run's model scored on this run's validation: {run, validation}."
    )
    artifact_path = models.CharField(max_length=500, blank=True)
    published_at = models.DateTimeField(null=True, blank=True)
    held_back_reason = models.TextField(blank=True, help_text="Why a succeeded run was not published automatically.")
    publish_attempts = models.PositiveSmallIntegerField(
        default=0, help_text="Publish tasks sent for it; the sweeper resends a lost one up to a cap."
    )
    reason = models.CharField(max_length=64, blank=True, help_text="What asked for this run.")
    training_sent_at = models.DateTimeField(
        null=True, blank=True, help_text="When its training message was last sent; empty: none is on its way."
    )
    training_sends = models.PositiveSmallIntegerField(default=0, help_text="Training messages sent for it.")

    objects = TrainingRunQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        permissions = [("retrain", "Can start a retraining of the recommender")]

    def __str__(self) -> str:
        return f"training run {self.pk} ({self.status})"

    @property
    def training_config(self) -> TrainingConfig:
        """The run's resolved settings as the typed tree every consumer reads (defaults before it is claimed)."""
        return TrainingConfig.from_dict(self.config)

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None


class RecommenderState(models.Model):
    """One row: how much the data changed since training was last requested (read by the beat sweeper)."""

    num_changes = models.PositiveIntegerField(default=0)
    changed_at = models.DateTimeField(null=True, blank=True)
    last_requested_at = models.DateTimeField(null=True, blank=True)
    live_run = models.ForeignKey(
        TrainingRun,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The run the Milvus alias points to, recorded at publish and rollback (read when Milvus is down).",
    )
    # A lease that serialises every change to Milvus collections (publish, rollback, clean-up), across workers.
    vector_lock_token = models.CharField(max_length=32, blank=True)
    vector_lock_until = models.DateTimeField(null=True, blank=True)
    vectors_synced_at = models.DateTimeField(
        null=True, blank=True, help_text="Movies edited before this have their vector in the live collection."
    )

    class Meta:
        verbose_name = "recommender state"

    def __str__(self) -> str:
        return f"{self.num_changes} change(s) since the last retrain request"

    @classmethod
    def current(cls) -> "RecommenderState":
        state, _ = cls.objects.get_or_create(id=1)
        return state


class LiveChange(models.Model):
    """Each time the alias moved to another run: what moved it, who, when, from which run to which."""

    class Action(models.TextChoices):
        PUBLISH = "publish", "Published after training"
        MAKE_LIVE = "make_live", "Made live by staff"
        ROLL_BACK = "roll_back", "Rolled back by staff"

    at = models.DateTimeField(auto_now_add=True)
    action = models.CharField(max_length=16, choices=Action.choices)
    from_run = models.ForeignKey(TrainingRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    to_run = models.ForeignKey(TrainingRun, null=True, on_delete=models.SET_NULL, related_name="went_live")
    by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.get_action_display()}: run {self.from_run_id or '-'} -> run {self.to_run_id}"


class MovieRemoval(models.Model):
    """A deleted movie still to be removed from the Milvus collections; the row goes when Milvus confirms."""

    movie_id = models.BigIntegerField(unique=True)
    deleted_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"movie {self.movie_id}, deleted {self.deleted_at:%Y-%m-%d %H:%M}"


class Experiment(models.Model):
    """An interleaved comparison of the live run and a challenger run on signed-in people's personal lists.

    A share of people, chosen by a stable hash of their id and the experiment's salt, get a team-draft
    interleaving of both runs' lists (recommender.ml.interleaving); interactions on a pick credit the run that
    put it there. One experiment runs at a time; it stops by itself when the live run changes under it."""

    class Status(models.TextChoices):
        PREPARING = "preparing", "Preparing the challenger's collection"
        RUNNING = "running", "Running"
        STOPPED = "stopped", "Stopped"

    name = models.CharField(max_length=100)
    live_run = models.ForeignKey(TrainingRun, on_delete=models.PROTECT, related_name="+")
    challenger_run = models.ForeignKey(TrainingRun, on_delete=models.PROTECT, related_name="+")
    share = models.FloatField(default=0.5, help_text="The share of signed-in people who see the interleaved list.")
    salt = models.CharField(max_length=32, help_text="Keeps each person's assignment stable for this experiment.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PREPARING, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True)
    stop_reason = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name}: run {self.live_run_id} (live) against run {self.challenger_run_id}"


class Impression(models.Model):
    """One recommendation list a person was shown (page or API). Its id is drawn at random when the list is
    served, so links on the page can carry it before the row is written (off the request path, in batches).
    Names nobody beyond the user id; pruned after IMPRESSION_RETENTION_DAYS (daily counts stay)."""

    class Source(models.TextChoices):
        PERSONAL = "personal"
        CO_RATED = "co_rated"
        POPULAR = "popular"
        SIMILAR = "similar"

    id = models.BigIntegerField(primary_key=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, db_constraint=False, related_name="+"
    )
    shown_at = models.DateTimeField(db_index=True)
    surface = models.CharField(max_length=8)  # "page" or "api"
    source = models.CharField(max_length=16, choices=Source.choices)
    run_id = models.IntegerField(null=True, blank=True)
    experiment = models.ForeignKey(
        Experiment, null=True, blank=True, on_delete=models.CASCADE, db_constraint=False, related_name="impressions"
    )
    movies = models.JSONField(default=list)  # movie ids in the order shown
    teams = models.JSONField(default=list, blank=True)  # per position, in an experiment: 0 live, 1 challenger
    context_movie_id = models.BigIntegerField(null=True, blank=True)  # the movie whose similar list this is


class Interaction(models.Model):
    """A click on a shown movie, a rating given to it or a "not interested" within INTERACTION_WINDOW_MINUTES
    of seeing it, against the impression that showed it."""

    class Kind(models.TextChoices):
        CLICK = "click"
        RATING = "rating"
        HIDDEN = "hidden"

    impression = models.ForeignKey(Impression, on_delete=models.CASCADE, db_constraint=False, related_name="+")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, db_constraint=False, related_name="+"
    )
    movie_id = models.BigIntegerField()
    kind = models.CharField(max_length=8, choices=Kind.choices)
    at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["impression", "movie_id", "kind"], name="one_interaction_of_a_kind")
        ]


class ImpressionDay(models.Model):
    """Daily counts kept after the raw rows are pruned: lists shown and what people did with them."""

    day = models.DateField()
    surface = models.CharField(max_length=8)
    source = models.CharField(max_length=16)
    run_id = models.IntegerField(null=True, blank=True)
    impressions = models.PositiveIntegerField(default=0)
    clicks = models.PositiveIntegerField(default=0)
    ratings = models.PositiveIntegerField(default=0)
    hidden = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["day", "surface", "source", "run_id"], name="one_count_a_day")]
        ordering = ["-day"]
