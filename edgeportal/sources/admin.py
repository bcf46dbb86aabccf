from django.contrib import admin, messages

from edgeportal.sources.models import Source
from edgeportal.sources.services import source_rotate_token


@admin.register(Source)
class SourceAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "is_active", "allow_free_prompts", "created_at"]
    exclude = ["token_hash"]

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        token = source_rotate_token(source=obj)  # saves the new source with the token's hash
        messages.warning(request, f"Token for {obj.name} (shown once, store it now): {token}")
