from django.contrib import admin

from edgeportal.prompts.models import PromptTemplate


@admin.register(PromptTemplate)
class PromptTemplateAdmin(admin.ModelAdmin):
    list_display = ["slug", "title", "language", "max_new_tokens", "updated_at"]
    prepopulated_fields = {"slug": ["title"]}
