from django.contrib import admin

from edgeportal.core.admin import ReadOnlyAdmin
from edgeportal.lab.models import LabPoint, LabRun


class LabPointInline(admin.TabularInline):
    model = LabPoint
    fields = ["window_ms", "jobs", "mean_batch_size", "throughput", "p50_ms", "p95_ms", "p99_ms"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(LabRun)
class LabRunAdmin(ReadOnlyAdmin):
    list_display = ["id", "created_at", "model_name", "dtype", "target_p95_ms"]
    inlines = [LabPointInline]
