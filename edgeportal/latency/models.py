"""Latency records: one per finished job and one per batch, the facts every latency page reads."""

from django.db import models
from django.utils.translation import gettext_lazy as _

from inference.lanes import Lane, Priority


class BatchRecord(models.Model):
    batch_id = models.CharField(max_length=32, unique=True, verbose_name=_("batch id"))
    worker = models.CharField(max_length=200, verbose_name=_("worker"))
    size = models.PositiveIntegerField(verbose_name=_("size"))
    prompt_tokens = models.PositiveIntegerField(
        help_text=_("Real prompt tokens, without padding."), verbose_name=_("prompt tokens")
    )
    padded_tokens = models.PositiveIntegerField(
        help_text=_("Batch size times the padded prompt length."), verbose_name=_("padded tokens")
    )
    output_tokens = models.PositiveIntegerField(verbose_name=_("output tokens"))
    window_opened_at = models.DateTimeField(verbose_name=_("window opened at"))
    inference_started_at = models.DateTimeField(verbose_name=_("inference started at"))
    inference_ms = models.FloatField(
        help_text=_("The model's time on this batch, without pauses."), verbose_name=_("inference (ms)")
    )
    paused_ms = models.FloatField(
        default=0, help_text=_("Time a long batch stood aside for short batches."), verbose_name=_("paused (ms)")
    )
    lane = models.CharField(max_length=10, default=Lane.SHORT, db_index=True, verbose_name=_("lane"))
    window_ms = models.PositiveIntegerField(
        help_text=_("Window this batch waited with (the effective one if adaptive)."), verbose_name=_("window (ms)")
    )
    max_batch_size = models.PositiveIntegerField(
        help_text=_("Scheduler setting this batch ran with."), verbose_name=_("max batch size")
    )
    settings = models.JSONField(
        default=dict,
        blank=True,
        help_text=_("Every scheduler setting this batch ran with."),
        verbose_name=_("settings"),
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True, verbose_name=_("created at"))

    class Meta:
        verbose_name = _("batch")
        verbose_name_plural = _("batches")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Batch {self.batch_id[:8]} ({self.size} jobs)"


# Every column the history filters on, time first (see JobLatency.Meta.indexes).
FILTER_COLUMNS = ["created_at", "status", "lane", "cache_hit", "batch_size", "template", "source", "worker"]


class JobLatency(models.Model):
    # The record outlives its job (jobs are pruned after EDGE_JOB_RETENTION_DAYS): it holds every dimension the
    # history reads, and is rolled into hourly aggregates after EDGE_LATENCY_RETENTION_DAYS.
    job = models.OneToOneField(
        "jobs.Job", null=True, on_delete=models.SET_NULL, related_name="latency", verbose_name=_("job")
    )
    batch = models.ForeignKey(
        BatchRecord, null=True, on_delete=models.SET_NULL, related_name="job_latencies", verbose_name=_("batch")
    )
    status = models.CharField(
        max_length=10,
        db_index=True,
        help_text=_("How the job ended: done, failed or expired."),
        verbose_name=_("status"),
    )
    cache_hit = models.BooleanField(default=False, verbose_name=_("cache hit"))
    template = models.ForeignKey(
        "prompts.PromptTemplate", null=True, blank=True, on_delete=models.SET_NULL, verbose_name=_("template")
    )
    source = models.ForeignKey(
        "sources.Source", null=True, blank=True, on_delete=models.SET_NULL, verbose_name=_("source")
    )
    lane = models.CharField(max_length=10, default=Lane.SHORT, verbose_name=_("lane"))
    priority = models.CharField(max_length=10, default=Priority.NORMAL, verbose_name=_("priority"))
    deadline_ms = models.FloatField(
        null=True, help_text=_("Time the job had: created until its deadline."), verbose_name=_("deadline (ms)")
    )
    # Null where the job never reached that stage (a failed job may never have run).
    queue_wait_ms = models.FloatField(
        null=True, help_text=_("Created until read into a batch window."), verbose_name=_("queue wait (ms)")
    )
    window_wait_ms = models.FloatField(
        null=True, help_text=_("Read into the window until inference started."), verbose_name=_("window wait (ms)")
    )
    inference_ms = models.FloatField(null=True, verbose_name=_("inference (ms)"))
    first_token_ms = models.FloatField(
        null=True, help_text=_("Created until its batch decoded its first token."), verbose_name=_("first token (ms)")
    )
    rerank_ms = models.FloatField(
        null=True,
        help_text=_("The reranker's time choosing among the job's candidates (inside inference)."),
        verbose_name=_("rerank (ms)"),
    )
    total_ms = models.FloatField(help_text=_("Created until finished."), verbose_name=_("total (ms)"))
    batch_size = models.PositiveIntegerField(null=True, verbose_name=_("batch size"))
    prompt_tokens = models.PositiveIntegerField(null=True, verbose_name=_("prompt tokens"))
    output_tokens = models.PositiveIntegerField(null=True, verbose_name=_("output tokens"))
    worker = models.CharField(max_length=200, blank=True, verbose_name=_("worker"))
    created_at = models.DateTimeField(auto_now_add=True, db_index=True, verbose_name=_("created at"))

    class Meta:
        verbose_name = _("latency record")
        verbose_name_plural = _("latency records")
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

    hour = models.DateTimeField(help_text=_("Start of the hour (UTC)."), verbose_name=_("hour"))
    template = models.ForeignKey(
        "prompts.PromptTemplate", null=True, blank=True, on_delete=models.SET_NULL, verbose_name=_("template")
    )
    source = models.ForeignKey(
        "sources.Source", null=True, blank=True, on_delete=models.SET_NULL, verbose_name=_("source")
    )
    lane = models.CharField(max_length=10, verbose_name=_("lane"))
    status = models.CharField(max_length=10, verbose_name=_("status"))
    cache_hit = models.BooleanField(verbose_name=_("cache hit"))
    worker = models.CharField(max_length=200, blank=True, verbose_name=_("worker"))
    count = models.PositiveIntegerField(help_text=_("Jobs in this hour and combination."), verbose_name=_("count"))
    # Per stage: how many jobs reached it (the stage is empty for the others), their sum and maximum.
    queue_wait_count = models.PositiveIntegerField(default=0, verbose_name=_("queue wait count"))
    queue_wait_sum = models.FloatField(default=0, verbose_name=_("queue wait sum"))
    queue_wait_max = models.FloatField(null=True, verbose_name=_("queue wait max"))
    window_wait_count = models.PositiveIntegerField(default=0, verbose_name=_("window wait count"))
    window_wait_sum = models.FloatField(default=0, verbose_name=_("window wait sum"))
    window_wait_max = models.FloatField(null=True, verbose_name=_("window wait max"))
    inference_count = models.PositiveIntegerField(default=0, verbose_name=_("inference count"))
    inference_sum = models.FloatField(default=0, verbose_name=_("inference sum"))
    inference_max = models.FloatField(null=True, verbose_name=_("inference max"))
    total_count = models.PositiveIntegerField(default=0, verbose_name=_("total count"))
    total_sum = models.FloatField(default=0, verbose_name=_("total sum"))
    total_max = models.FloatField(null=True, verbose_name=_("total max"))

    class Meta:
        verbose_name = _("hourly latency")
        verbose_name_plural = _("hourly latencies")
        ordering = ["-hour"]
        indexes = [models.Index(fields=["hour"], name="latency_hour_start")]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H}h {self.status} ({self.count} jobs)"


class LatencyHourBucket(models.Model):
    """How many jobs of one LatencyHour fell into one fixed latency bucket of one stage (only non-empty buckets)."""

    hour = models.ForeignKey(LatencyHour, on_delete=models.CASCADE, related_name="buckets", verbose_name=_("hour"))
    metric = models.CharField(
        max_length=20, help_text=_("queue_wait, window_wait, inference or total."), verbose_name=_("metric")
    )
    bucket = models.PositiveSmallIntegerField(
        help_text=_("Index into edgeportal.latency.buckets.BOUNDS_MS."), verbose_name=_("bucket")
    )
    count = models.PositiveIntegerField(verbose_name=_("count"))

    class Meta:
        verbose_name = _("hourly latency bucket")
        verbose_name_plural = _("hourly latency buckets")
        constraints = [models.UniqueConstraint(fields=["hour", "metric", "bucket"], name="latency_hour_bucket_unique")]

    def __str__(self) -> str:
        return f"{self.metric}[{self.bucket}] = {self.count}"
