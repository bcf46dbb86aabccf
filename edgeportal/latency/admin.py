from django.contrib import admin

from edgeportal.core.admin import ReadOnlyAdmin
from edgeportal.latency.models import BatchRecord, JobLatency, LatencyHour


@admin.register(BatchRecord)
class BatchRecordAdmin(ReadOnlyAdmin):
    list_display = ["batch_id", "worker", "size", "padded_tokens", "inference_ms", "paused_ms", "created_at"]


@admin.register(JobLatency)
class JobLatencyAdmin(ReadOnlyAdmin):
    list_display = ["job", "status", "queue_wait_ms", "window_wait_ms", "inference_ms", "total_ms", "batch_size"]


@admin.register(LatencyHour)
class LatencyHourAdmin(ReadOnlyAdmin):
    list_display = ["hour", "status", "lane", "worker", "cache_hit", "count", "total_max"]
