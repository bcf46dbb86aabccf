"""Prompt templates: a body with named {variables} that managers and machines fill in."""

import re

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
    version = models.PositiveIntegerField(
        default=1, editable=False, help_text="Raised when what the model sees changes."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    VERSIONED_FIELDS = ("body", "system_prompt", "max_new_tokens")

    class Meta:
        ordering = ["title"]

    def __str__(self) -> str:
        return self.title

    def save(self, *args, **kwargs):
        # A new version gets new cache keys: an edited template never answers from the old one's cache.
        if self.pk:
            old = PromptTemplate.objects.filter(pk=self.pk).values(*self.VERSIONED_FIELDS).first()
            if old and any(old[name] != getattr(self, name) for name in self.VERSIONED_FIELDS):
                self.version += 1
        super().save(*args, **kwargs)

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


class BlockedPattern(models.Model):
    """A regular expression the guard refuses in variable values and free prompts (case-insensitive)."""

    pattern = models.CharField(max_length=500, unique=True)
    description = models.CharField(max_length=200, blank=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.pattern

    def clean(self) -> None:
        try:
            re.compile(self.pattern)
        except re.error as error:
            raise ValidationError({"pattern": f"Not a valid regular expression: {error}."}) from None
