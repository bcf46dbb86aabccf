"""Latency records: one per finished job and one per batch, the facts every latency page reads."""

from django.db import models
from django.utils.translation import gettext_lazy as _

from inference.lanes import Lane, Priority


class BatchRecord(models.Model):
    batch_id = models.CharField(max_length=32, unique=True)
    worker = models.CharField(max_length=200)
    size = models.PositiveIntegerField()
    prompt_tokens = models.PositiveIntegerField(help_text=_("Real prompt tokens, without padding."))
    padded_tokens = models.PositiveIntegerField(help_text=_("Batch size times the padded prompt length."))
    output_tokens = models.PositiveIntegerField()
    window_opened_at = models.DateTimeField()
    inference_started_at = models.DateTimeField()
    inference_ms = models.FloatField(help_text=_("The model's time on this batch, without pauses."))
    paused_ms = models.FloatField(default=0, help_text=_("Time a long batch stood aside for short batches."))
    lane = models.CharField(max_length=10, default=Lane.SHORT, db_index=True)
    window_ms = models.PositiveIntegerField(
        help_text=_("Window this batch waited with (the effective one if adaptive).")
    )
    max_batch_size = models.PositiveIntegerField(help_text=_("Scheduler setting this batch ran with."))
    settings = models.JSONField(default=dict, blank=True, help_text=_("Every scheduler setting this batch ran with."))
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Batch {self.batch_id[:8]} ({self.size} jobs)"


# Every column the history filters on, time first (see JobLatency.Meta.indexes).
FILTER_COLUMNS = ["created_at", "status", "lane", "cache_hit", "batch_size", "template", "source", "worker"]


class JobLatency(models.Model):
    # The record outlives its job (jobs are pruned after EDGE_JOB_RETENTION_DAYS): it holds every dimension the
    # history reads, and is rolled into hourly aggregates after EDGE_LATENCY_RETENTION_DAYS.
    job = models.OneToOneField("jobs.Job", null=True, on_delete=models.SET_NULL, related_name="latency")
    batch = models.ForeignKey(BatchRecord, null=True, on_delete=models.SET_NULL, related_name="job_latencies")
    status = models.CharField(max_length=10, db_index=True, help_text=_("How the job ended: done, failed or expired."))
    cache_hit = models.BooleanField(default=False)
    template = models.ForeignKey("prompts.PromptTemplate", null=True, blank=True, on_delete=models.SET_NULL)
    source = models.ForeignKey("sources.Source", null=True, blank=True, on_delete=models.SET_NULL)
    lane = models.CharField(max_length=10, default=Lane.SHORT)
    priority = models.CharField(max_length=10, default=Priority.NORMAL)
    deadline_ms = models.FloatField(null=True, help_text=_("Time the job had: created until its deadline."))
    # Null where the job never reached that stage (a failed job may never have run).
    queue_wait_ms = models.FloatField(null=True, help_text=_("Created until read into a batch window."))
    window_wait_ms = models.FloatField(null=True, help_text=_("Read into the window until inference started."))
    inference_ms = models.FloatField(null=True)
    first_token_ms = models.FloatField(null=True, help_text=_("Created until its batch decoded its first token."))
    rerank_ms = models.FloatField(
        null=True, help_text=_("The reranker's time choosing among the job's candidates (inside inference).")
    )
    total_ms = models.FloatField(help_text=_("Created until finished."))
    batch_size = models.PositiveIntegerField(null=True)
    prompt_tokens = models.PositiveIntegerField(null=True)
    output_tokens = models.PositiveIntegerField(null=True)
    worker = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        # For the history page: each filter with the time range (small selections), and per stage one index
        # that also holds every filter column: sorting by a stage and the percentile queries over large
        # selections walk it in order (ORDER BY stage LIMIT 1 OFFSET k) without reading the table.
        indexes = [
            models.Index(fields=["status", "created_at"], name="latency_status_created"),
            models.Index(fields=["lane", "created_at"], name="latency_lane_created"),
            models.Index(fields=["worker", "created_at"], name="latency_worker_created"),
            models.Index(fields=["cache_hit", "created_at"], name="latency_cache_hit_created"),
            models.Index(fields=["batch_size", "created_at"], name="latency_batch_size_created"),
            models.Index(fields=["template", "created_at"], name="latency_template_created"),
            models.Index(fields=["source", "created_at"], name="latency_source_created"),
            models.Index(fields=["total_ms", *FILTER_COLUMNS], name="latency_total_ms_cover"),
            models.Index(fields=["queue_wait_ms", *FILTER_COLUMNS], name="latency_queue_wait_ms_cover"),
            models.Index(fields=["window_wait_ms", *FILTER_COLUMNS], name="latency_window_wait_ms_cover"),
            models.Index(fields=["inference_ms", *FILTER_COLUMNS], name="latency_inference_ms_cover"),
        ]

    def __str__(self) -> str:
        return f"Latency of job {self.job_id}: {self.total_ms:.0f} ms"


class LatencyHour(models.Model):
    """Job latencies of one hour and one combination of filter dimensions, kept after the raw records are deleted.

    Counts, sums and maxima are exact; percentiles come from the fixed buckets in LatencyHourBucket.
    """

    hour = models.DateTimeField(help_text=_("Start of the hour (UTC)."))
    template = models.ForeignKey("prompts.PromptTemplate", null=True, blank=True, on_delete=models.SET_NULL)
    source = models.ForeignKey("sources.Source", null=True, blank=True, on_delete=models.SET_NULL)
    lane = models.CharField(max_length=10)
    status = models.CharField(max_length=10)
    cache_hit = models.BooleanField()
    worker = models.CharField(max_length=200, blank=True)
    count = models.PositiveIntegerField(help_text=_("Jobs in this hour and combination."))
    # Per stage: how many jobs reached it (the stage is empty for the others), their sum and maximum.
    queue_wait_count = models.PositiveIntegerField(default=0)
    queue_wait_sum = models.FloatField(default=0)
    queue_wait_max = models.FloatField(null=True)
    window_wait_count = models.PositiveIntegerField(default=0)
    window_wait_sum = models.FloatField(default=0)
    window_wait_max = models.FloatField(null=True)
    inference_count = models.PositiveIntegerField(default=0)
    inference_sum = models.FloatField(default=0)
    inference_max = models.FloatField(null=True)
    total_count = models.PositiveIntegerField(default=0)
    total_sum = models.FloatField(default=0)
    total_max = models.FloatField(null=True)

    class Meta:
        ordering = ["-hour"]
        indexes = [models.Index(fields=["hour"], name="latency_hour_start")]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H}h {self.status} ({self.count} jobs)"


class LatencyHourBucket(models.Model):
    """How many jobs of one LatencyHour fell into one fixed latency bucket of one stage (only non-empty buckets)."""

    hour = models.ForeignKey(LatencyHour, on_delete=models.CASCADE, related_name="buckets")
    metric = models.CharField(max_length=20, help_text=_("queue_wait, window_wait, inference or total."))
    bucket = models.PositiveSmallIntegerField(help_text=_("Index into edgeportal.latency.buckets.BOUNDS_MS."))
    count = models.PositiveIntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["hour", "metric", "bucket"], name="latency_hour_bucket_unique")]

    def __str__(self) -> str:
        return f"{self.metric}[{self.bucket}] = {self.count}"
