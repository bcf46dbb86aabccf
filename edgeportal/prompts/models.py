"""Prompt templates: a body with named {variables} that managers and machines fill in."""

from django.core.exceptions import ValidationError
from django.db import models

from edgeportal.prompts.rendering import TemplateSyntaxProblem, template_variables


class PromptTemplate(models.Model):
    slug = models.SlugField(max_length=80, unique=True)
    title = models.CharField(max_length=200)
    body = models.TextField(help_text="Use {name} for a variable; names are letters, digits and underscores.")
    system_prompt = models.TextField(blank=True)
    language = models.CharField(max_length=20, default="en", help_text="Language of the output, e.g. en, zh, es.")
    max_new_tokens = models.PositiveIntegerField(default=32)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["title"]

    def __str__(self) -> str:
        return self.title

    @property
    def variables(self) -> list[str]:
        return template_variables(self.body)

    def clean(self) -> None:
        try:
            template_variables(self.body)
        except TemplateSyntaxProblem as problem:
            raise ValidationError({"body": str(problem)}) from None
        if not 1 <= self.max_new_tokens <= 1024:
            raise ValidationError({"max_new_tokens": "Must be between 1 and 1024."})
