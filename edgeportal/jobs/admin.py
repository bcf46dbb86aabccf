from django.contrib import admin

from edgeportal.core.admin import ReadOnlyAdmin
from edgeportal.jobs.models import Job, Rejection


@admin.register(Job)
class JobAdmin(ReadOnlyAdmin):
    list_display = ["id", "status", "template", "source", "submitted_by", "created_at", "finished_at"]
    list_filter = ["status", "template", "source"]


@admin.register(Rejection)
class RejectionAdmin(ReadOnlyAdmin):
    """Refusals per minute, source or user, template and rule, with a count and the first message."""

    list_display = ["created_at", "rule", "count", "source", "user", "template_slug", "message"]
    list_filter = ["rule", "source"]
    date_hierarchy = "created_at"
