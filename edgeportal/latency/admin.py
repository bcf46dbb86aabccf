from django.contrib import admin

from edgeportal.latency.models import BatchRecord, JobLatency


@admin.register(BatchRecord)
class BatchRecordAdmin(admin.ModelAdmin):
    list_display = ["batch_id", "worker", "size", "padded_tokens", "inference_ms", "created_at"]


@admin.register(JobLatency)
class JobLatencyAdmin(admin.ModelAdmin):
    list_display = ["job", "queue_wait_ms", "window_wait_ms", "inference_ms", "total_ms", "batch_size"]
