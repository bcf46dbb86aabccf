"""Jobs: one prompt from a form or a machine, its status, output and timestamps."""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from edgeportal.core.labels import LANE_LABELS
from inference import lanes

PRIORITY_LABELS = {"high": _("high"), "normal": _("normal"), "low": _("low")}


class Job(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", _("queued")
        RUNNING = "running", _("running")
        DONE = "done", _("done")
        FAILED = "failed", _("failed")
        EXPIRED = "expired", _("expired")  # its deadline passed, or could no longer be met, before it ran

    # The scheduler's own names (inference.lanes), as choices for forms and the admin; labels for pages.
    Priority = models.TextChoices("Priority", [(p.name, (p.value, PRIORITY_LABELS[p.value])) for p in lanes.Priority])
    Lane = models.TextChoices("Lane", [(lane.name, (lane.value, LANE_LABELS[lane.value])) for lane in lanes.Lane])

    FINISHED = (Status.DONE, Status.FAILED, Status.EXPIRED)

    source = models.ForeignKey(
        "sources.Source",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="jobs",
        verbose_name=_("source"),
    )
    submitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="jobs",
        verbose_name=_("submitted by"),
    )
    template = models.ForeignKey(
        "prompts.PromptTemplate",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="jobs",
        verbose_name=_("template"),
    )
    variables = models.JSONField(default=dict, blank=True, verbose_name=_("variables"))
    prompt = models.TextField(help_text=_("The rendered prompt the model ran."), verbose_name=_("prompt"))
    system_prompt = models.TextField(blank=True, verbose_name=_("system prompt"))
    max_new_tokens = models.PositiveIntegerField(verbose_name=_("max new tokens"))
    decoding = models.JSONField(
        default=dict,
        blank=True,
        help_text=_("How it is decoded when not greedy chat: sampling, stop strings, raw, stream."),
        verbose_name=_("decoding"),
    )

    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED, verbose_name=_("status"))
    priority = models.CharField(
        max_length=10, choices=Priority.choices, default=Priority.NORMAL, verbose_name=_("priority")
    )
    lane = models.CharField(max_length=10, choices=Lane.choices, default=Lane.SHORT, verbose_name=_("lane"))
    model = models.CharField(
        max_length=64, blank=True, help_text=_("The model it runs on (empty: the default)."), verbose_name=_("model")
    )
    pool = models.CharField(
        max_length=80,
        blank=True,
        help_text=_("The pool it was queued in: its model on a class of device."),
        verbose_name=_("pool"),
    )
    deadline_at = models.DateTimeField(
        null=True, blank=True, help_text=_("Not run after this; it expires instead."), verbose_name=_("deadline at")
    )
    output = models.TextField(blank=True, verbose_name=_("output"))
    error = models.TextField(blank=True, verbose_name=_("error"))
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True, verbose_name=_("prompt tokens"))
    output_tokens = models.PositiveIntegerField(null=True, blank=True, verbose_name=_("output tokens"))
    finish_reason = models.CharField(
        max_length=10,
        blank=True,
        help_text=_("Why its output ended: stop (its end, or a stop string) or length."),
        verbose_name=_("finish reason"),
    )
    choice = models.JSONField(
        default=dict,
        blank=True,
        help_text=_("Why this answer, for a job of several candidates: each one's scores and the chosen one."),
        verbose_name=_("choice"),
    )
    batch = models.ForeignKey(
        "latency.BatchRecord",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="jobs",
        verbose_name=_("batch"),
    )
    worker = models.CharField(max_length=200, blank=True, verbose_name=_("worker"))
    template_version = models.PositiveIntegerField(null=True, blank=True, verbose_name=_("template version"))
    cache_key = models.CharField(
        max_length=64,
        blank=True,
        help_text=_("The prompt cache key; identical jobs share it."),
        verbose_name=_("cache key"),
    )
    cache_hit = models.BooleanField(
        default=False, help_text=_("Answered from the prompt cache or another job's run."), verbose_name=_("cache hit")
    )
    cache_similarity = models.FloatField(
        null=True,
        blank=True,
        help_text=_("Answered from the semantic cache: how close its request was (cosine)."),
        verbose_name=_("cache similarity"),
    )
    follows = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="followers",
        help_text=_("The identical job whose result answered this one (single flight), if any."),
        verbose_name=_("follows"),
    )  # fmt: skip

    has_outputs = models.BooleanField(
        default=False,
        help_text=_("Its template declares outputs: each runs as a job of its own; it runs nothing."),
        verbose_name=_("has outputs"),
    )
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="runs",
        help_text=_("The job one of whose outputs this job generates."), verbose_name=_("parent")
    )  # fmt: skip

    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))
    picked_at = models.DateTimeField(
        null=True, blank=True, help_text=_("Entered a worker's batch window."), verbose_name=_("picked at")
    )
    inference_started_at = models.DateTimeField(null=True, blank=True, verbose_name=_("inference started at"))
    inference_ended_at = models.DateTimeField(null=True, blank=True, verbose_name=_("inference ended at"))
    finished_at = models.DateTimeField(null=True, blank=True, verbose_name=_("finished at"))

    class Meta:
        verbose_name = _("job")
        verbose_name_plural = _("jobs")
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["status", "created_at"]),  # jobs waiting or running; retention; the sweep
            # The job list's order (newest first, id breaking ties), and the last hour's cache hit rate read
            # from the index alone.
            models.Index(fields=["created_at", "id", "cache_hit"], name="job_list_order"),
            # Single flight: the unfinished jobs of a flight group, and one of its jobs done since a time.
            models.Index(fields=["cache_key", "status", "finished_at"], name="job_flight"),
        ]
        permissions = [("submit_free_prompt", "Can submit a free prompt without a template")]

    def __str__(self) -> str:
        return f"Job {self.pk} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED


class Rejection(models.Model):
    """Requests the entry refused (bad input, a guard rule, a rate limit, a full queue) in one minute, from one
    source or user, for one template and rule: nothing of them reached the model.

    Counted in Redis as they happen and stored here per minute (edgeportal.jobs.refusals), so refusing a
    request never writes to the database."""

    source = models.ForeignKey(
        "sources.Source", null=True, blank=True, on_delete=models.SET_NULL, verbose_name=_("source")
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, verbose_name=_("user")
    )
    template_slug = models.CharField(
        max_length=80, blank=True, help_text=_("The template, when it exists."), verbose_name=_("template slug")
    )
    rule = models.CharField(max_length=40, db_index=True, verbose_name=_("rule"))
    count = models.PositiveIntegerField(default=1, help_text=_("Refusals in this minute."), verbose_name=_("count"))
    message = models.TextField(
        help_text=_("The first refusal's message in this minute, cut to 300 characters."), verbose_name=_("message")
    )
    created_at = models.DateTimeField(
        db_index=True, help_text=_("The start of the minute (UTC)."), verbose_name=_("created at")
    )

    class Meta:
        verbose_name = _("refusal")
        verbose_name_plural = _("refusals")
        ordering = ["-created_at", "rule"]

    def __str__(self) -> str:
        return f"{self.rule} x{self.count}: {self.message[:60]}"
