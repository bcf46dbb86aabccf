from django.contrib import admin
from django.db import models

from edgeportal.formfields import StrictIntegerField
from edgeportal.prompts.models import BlockedPattern, PromptTemplate, TemplateVersion
from edgeportal.prompts.services import template_save


class TemplateVersionInline(admin.TabularInline):
    model = TemplateVersion
    fields = ["version", "body", "max_new_tokens", "created_by", "created_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(PromptTemplate)
class PromptTemplateAdmin(admin.ModelAdmin):
    list_display = ["slug", "title", "version", "language", "max_new_tokens", "updated_at"]
    readonly_fields = ["version"]
    prepopulated_fields = {"slug": ["title"]}
    filter_horizontal = ["sources"]
    inlines = [TemplateVersionInline]
    formfield_overrides = {
        models.PositiveIntegerField: {"form_class": StrictIntegerField},
        models.PositiveSmallIntegerField: {"form_class": StrictIntegerField},
    }

    def save_model(self, request, obj, form, change):
        template_save(template=obj, user=request.user)  # every change of content becomes a new version


@admin.register(BlockedPattern)
class BlockedPatternAdmin(admin.ModelAdmin):
    list_display = ["pattern", "description", "is_active", "created_at"]
    list_filter = ["is_active"]
