from django.contrib import admin

from edgeportal.sources.models import Source


@admin.register(Source)
class SourceAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "is_active", "allow_free_prompts", "created_at"]
    exclude = ["token_hash"]  # tokens are created by `manage.py create_source` and shown once
