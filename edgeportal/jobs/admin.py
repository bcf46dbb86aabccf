from django.contrib import admin

from edgeportal.jobs.models import Job


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ["id", "status", "template", "source", "submitted_by", "created_at", "finished_at"]
    list_filter = ["status", "template", "source"]
    readonly_fields = [f.name for f in Job._meta.fields]
