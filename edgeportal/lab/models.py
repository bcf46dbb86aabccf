"""Latency lab runs: one per `manage.py latency_lab`, with one point per window of its sweep."""

from django.db import models
from django.utils.translation import gettext_lazy as _


class LabRun(models.Model):
    created_at = models.DateTimeField(auto_now_add=True, db_index=True, verbose_name=_("created at"))
    model_name = models.CharField(max_length=200, verbose_name=_("model name"))
    dtype = models.CharField(max_length=20, verbose_name=_("dtype"))
    parameters = models.JSONField(
        default=dict, help_text=_("Every option the run was made with, and its rate."), verbose_name=_("parameters")
    )
    comparison = models.JSONField(
        default=dict,
        help_text=_("The same prompts as single requests one after another, then as one batch."),
        verbose_name=_("comparison"),
    )
    target_p95_ms = models.FloatField(
        null=True,
        blank=True,
        help_text=_("The p95 target given to the run, if any."),
        verbose_name=_("target p95 (ms)"),
    )
    notes = models.TextField(blank=True, verbose_name=_("notes"))

    class Meta:
        verbose_name = _("lab run")
        verbose_name_plural = _("lab runs")
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"Lab run {self.pk}: {self.model_name} ({self.dtype})"


class LabPoint(models.Model):
    """One window of a sweep. Latencies are in ms, from the job's arrival at the node to its result."""

    run = models.ForeignKey(LabRun, on_delete=models.CASCADE, related_name="points", verbose_name=_("run"))
    window_ms = models.PositiveIntegerField(verbose_name=_("window (ms)"))
    jobs = models.PositiveIntegerField(verbose_name=_("jobs"))
    batches = models.PositiveIntegerField(verbose_name=_("batches"))
    mean_batch_size = models.FloatField(verbose_name=_("mean batch size"))
    throughput = models.FloatField(
        help_text=_("Jobs per second, from the first arrival to the last result."), verbose_name=_("throughput")
    )
    p50_ms = models.FloatField(verbose_name=_("p50 (ms)"))
    p95_ms = models.FloatField(verbose_name=_("p95 (ms)"))
    p99_ms = models.FloatField(verbose_name=_("p99 (ms)"))
    end_to_end_p95_ms = models.FloatField(
        help_text=_("From the send, network jitter included."), verbose_name=_("end to end p95 (ms)")
    )
    queue_wait_p50_ms = models.FloatField(
        help_text=_("Arrival until its batch started."), verbose_name=_("queue wait p50 (ms)")
    )
    queue_wait_p95_ms = models.FloatField(verbose_name=_("queue wait p95 (ms)"))
    samples = models.JSONField(
        default=list, help_text=_("Each job's timings on the run's virtual clock."), verbose_name=_("samples")
    )

    class Meta:
        verbose_name = _("lab point")
        verbose_name_plural = _("lab points")
        ordering = ["run", "window_ms"]
        constraints = [models.UniqueConstraint(fields=["run", "window_ms"], name="lab_point_one_per_window")]

    def __str__(self) -> str:
        return f"Window {self.window_ms} ms of run {self.run_id}"
