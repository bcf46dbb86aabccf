"""Reads on prompt templates: which a source may use, and how machines see them."""

from django.conf import settings
from django.db.models import Count, Q, QuerySet

from edgeportal.core.lookups import cached_lookup
from edgeportal.prompts.guard import GuardRules, compiled_patterns
from edgeportal.prompts.models import BlockedPattern, PromptTemplate
from edgeportal.prompts.variables import Variable
from edgeportal.sources.models import Source


def templates_for_source(*, source: Source) -> QuerySet[PromptTemplate]:
    return PromptTemplate.objects.filter(Q(sources__isnull=True) | Q(sources=source)).distinct().order_by("slug")


def _variable_json(variable: Variable) -> dict:
    described = variable.as_dict()
    if variable.type == "text":  # the limit that really applies, declared or global
        described["max_length"] = min(variable.max_length or settings.EDGE_MAX_VARIABLE_CHARS,
                                      settings.EDGE_MAX_VARIABLE_CHARS)  # fmt: skip
    return described


def template_as_json(template: PromptTemplate) -> dict:
    return {
        "slug": template.slug,
        "title": template.title,
        "version": template.version,
        "language": template.language,
        "max_new_tokens": template.max_new_tokens,
        "variables": [_variable_json(variable) for variable in template.variable_spec()],
    }


def templates_with_hit_rate() -> QuerySet[PromptTemplate]:
    """Every template with its job count and how many of those the cache answered."""
    return PromptTemplate.objects.annotate(
        job_count=Count("jobs"), cache_hits=Count("jobs", filter=Q(jobs__cache_hit=True))
    ).order_by("title")


def guard_rules(*, max_chars: int, with_patterns: bool = True) -> GuardRules:
    """The guard's rules as the settings and the admins' active blocked patterns have them now."""
    return GuardRules(
        max_chars=max_chars,
        control_chars=settings.EDGE_GUARD_CONTROL_CHARS,
        blocked_patterns=compiled_patterns(blocked_patterns()) if with_patterns else (),
    )


def blocked_patterns() -> tuple[str, ...]:
    """The admins' active blocked patterns (kept between requests: core.lookups)."""
    return cached_lookup(
        "blocked_patterns",
        lambda: tuple(BlockedPattern.objects.filter(is_active=True).values_list("pattern", flat=True)),
    )
