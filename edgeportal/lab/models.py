"""Latency lab runs: one per `manage.py latency_lab`, with one point per window of its sweep."""

from django.db import models
from django.utils.translation import gettext_lazy as _


class LabRun(models.Model):
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    model_name = models.CharField(max_length=200)
    dtype = models.CharField(max_length=20)
    parameters = models.JSONField(default=dict, help_text=_("Every option the run was made with, and its rate."))
    comparison = models.JSONField(
        default=dict, help_text=_("The same prompts as single requests one after another, then as one batch.")
    )
    target_p95_ms = models.FloatField(null=True, blank=True, help_text=_("The p95 target given to the run, if any."))
    notes = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"Lab run {self.pk}: {self.model_name} ({self.dtype})"


class LabPoint(models.Model):
    """One window of a sweep. Latencies are in ms, from the job's arrival at the node to its result."""

    run = models.ForeignKey(LabRun, on_delete=models.CASCADE, related_name="points")
    window_ms = models.PositiveIntegerField()
    jobs = models.PositiveIntegerField()
    batches = models.PositiveIntegerField()
    mean_batch_size = models.FloatField()
    throughput = models.FloatField(help_text=_("Jobs per second, from the first arrival to the last result."))
    p50_ms = models.FloatField()
    p95_ms = models.FloatField()
    p99_ms = models.FloatField()
    end_to_end_p95_ms = models.FloatField(help_text=_("From the send, network jitter included."))
    queue_wait_p50_ms = models.FloatField(help_text=_("Arrival until its batch started."))
    queue_wait_p95_ms = models.FloatField()
    samples = models.JSONField(default=list, help_text=_("Each job's timings on the run's virtual clock."))

    class Meta:
        ordering = ["run", "window_ms"]
        constraints = [models.UniqueConstraint(fields=["run", "window_ms"], name="lab_point_one_per_window")]

    def __str__(self) -> str:
        return f"Window {self.window_ms} ms of run {self.run_id}"
