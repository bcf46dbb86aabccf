from django.contrib import admin

from edgeportal.prompts.models import BlockedPattern, PromptTemplate


@admin.register(PromptTemplate)
class PromptTemplateAdmin(admin.ModelAdmin):
    list_display = ["slug", "title", "version", "language", "max_new_tokens", "updated_at"]
    readonly_fields = ["version"]
    prepopulated_fields = {"slug": ["title"]}


@admin.register(BlockedPattern)
class BlockedPatternAdmin(admin.ModelAdmin):
    list_display = ["pattern", "description", "is_active", "created_at"]
    list_filter = ["is_active"]
