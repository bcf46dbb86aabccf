"""Writes on prompt templates: saving keeps every version, rolling back makes a new one."""

from __future__ import annotations

import difflib

from django.db import transaction

from edgeportal.prompts.models import CONTENT_FIELDS, PromptTemplate, TemplateVersion


def _content(obj) -> dict:
    return {name: getattr(obj, name) for name in CONTENT_FIELDS}


@transaction.atomic
def template_save(*, template: PromptTemplate, user=None) -> TemplateVersion | None:
    """Validate and save; when what the model sees changed (or the template is new), record a new version.

    Editing never rewrites history: jobs keep pointing at the version they ran.
    """
    template.full_clean()
    if template.pk:  # two admins saving at once: the second waits and becomes the next version
        PromptTemplate.objects.select_for_update().filter(pk=template.pk).first()
    latest = template.versions.order_by("-version").first() if template.pk else None
    changed = latest is None or _content(latest) != _content(template)
    if changed:
        template.version = latest.version + 1 if latest else 1
    template.save()
    if not changed:
        return None
    return TemplateVersion.objects.create(
        template=template,
        version=template.version,
        created_by=user if user is not None and user.is_authenticated else None,
        **_content(template),
    )


def template_rollback(*, template: PromptTemplate, version: int, user=None) -> TemplateVersion:
    """Make an old version current again, as a new version (history stays linear and complete)."""
    old = template.versions.get(version=version)
    for name, value in _content(old).items():
        setattr(template, name, value)
    new = template_save(template=template, user=user)
    return new or template.versions.get(version=template.version)


def version_diff(older: TemplateVersion | None, newer: TemplateVersion) -> list[str]:
    """A unified diff of what changed between two versions, line by line, for people to read."""

    def lines(version):
        if version is None:
            return []
        return [f"{name}: {value}" for name, value in _content(version).items()]

    return list(
        difflib.unified_diff(
            lines(older),
            lines(newer),
            fromfile=f"version {older.version}" if older else "(new)",
            tofile=f"version {newer.version}",
            lineterm="",
        )
    )
