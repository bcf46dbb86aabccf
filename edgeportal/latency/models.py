"""Latency records: one per finished job and one per batch, the facts every latency page reads."""

from django.db import models


class BatchRecord(models.Model):
    batch_id = models.CharField(max_length=32, unique=True)
    worker = models.CharField(max_length=200)
    size = models.PositiveIntegerField()
    prompt_tokens = models.PositiveIntegerField(help_text="Real prompt tokens, without padding.")
    padded_tokens = models.PositiveIntegerField(help_text="Batch size times the padded prompt length.")
    output_tokens = models.PositiveIntegerField()
    window_opened_at = models.DateTimeField()
    inference_started_at = models.DateTimeField()
    inference_ms = models.FloatField()
    lane = models.CharField(max_length=10, default="short", db_index=True)
    window_ms = models.PositiveIntegerField(help_text="Window this batch waited with (the effective one if adaptive).")
    max_batch_size = models.PositiveIntegerField(help_text="Scheduler setting this batch ran with.")
    settings = models.JSONField(default=dict, blank=True, help_text="Every scheduler setting this batch ran with.")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Batch {self.batch_id[:8]} ({self.size} jobs)"


class JobLatency(models.Model):
    job = models.OneToOneField("jobs.Job", on_delete=models.CASCADE, related_name="latency")
    batch = models.ForeignKey(BatchRecord, null=True, on_delete=models.SET_NULL, related_name="job_latencies")
    status = models.CharField(max_length=10, db_index=True, help_text="How the job ended: done, failed or expired.")
    cache_hit = models.BooleanField(default=False)
    template = models.ForeignKey("prompts.PromptTemplate", null=True, blank=True, on_delete=models.SET_NULL)
    source = models.ForeignKey("sources.Source", null=True, blank=True, on_delete=models.SET_NULL)
    lane = models.CharField(max_length=10, default="short")
    priority = models.CharField(max_length=10, default="normal")
    deadline_ms = models.FloatField(null=True, help_text="Time the job had: created until its deadline.")
    # Null where the job never reached that stage (a failed job may never have run).
    queue_wait_ms = models.FloatField(null=True, help_text="Created until read into a batch window.")
    window_wait_ms = models.FloatField(null=True, help_text="Read into the window until inference started.")
    inference_ms = models.FloatField(null=True)
    total_ms = models.FloatField(help_text="Created until finished.")
    batch_size = models.PositiveIntegerField(null=True)
    prompt_tokens = models.PositiveIntegerField(null=True)
    output_tokens = models.PositiveIntegerField(null=True)
    worker = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Latency of job {self.job_id}: {self.total_ms:.0f} ms"
