from django.contrib import admin, messages
from django.db import models
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from edgeportal.core.lookups import lookups_changed
from edgeportal.formfields import StrictIntegerField
from edgeportal.sources.models import Source
from edgeportal.sources.services import source_rotate_token


@admin.register(Source)
class SourceAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "is_active", "allow_free_prompts", "rate_limit_per_minute", "created_at"]
    list_filter = ["kind", "is_active"]
    exclude = ["token_hash"]
    actions = ["rotate_tokens", "disable"]
    formfield_overrides = {models.PositiveIntegerField: {"form_class": StrictIntegerField}}

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        token = source_rotate_token(source=obj)  # saves the new source with the token's hash
        messages.warning(
            request,
            _("Token for %(source)s (shown once, store it now): %(token)s") % {"source": obj.name, "token": token},
        )

    @admin.action(
        description=gettext_lazy("Rotate the token of the selected sources (old tokens stop working at once)"),
        permissions=["change"],
    )
    def rotate_tokens(self, request, queryset):
        for source in queryset:
            token = source_rotate_token(source=source)
            messages.warning(
                request,
                _("New token for %(source)s (shown once, store it now): %(token)s")
                % {"source": source.name, "token": token},
            )

    @admin.action(
        description=gettext_lazy("Disable the selected sources (their tokens are refused at once)"),
        permissions=["change"],
    )
    def disable(self, request, queryset):
        count = queryset.update(is_active=False)
        lookups_changed()  # update() sends no signal
        messages.success(request, _("Disabled %(count)d source(s).") % {"count": count})
