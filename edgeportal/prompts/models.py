"""Prompt templates and their versions: a body with named {variables} that managers and machines fill in."""

import re

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from edgeportal.core.queueing import model_catalog
from edgeportal.prompts.guard import RAW_LENGTH_FACTOR
from edgeportal.prompts.output_spec import OutputSpec, OutputSpecError, parse_outputs
from edgeportal.prompts.rendering import TemplateSyntaxProblem, template_variables
from edgeportal.prompts.variables import Variable, VariableError, parse_spec
from inference.decoding import COPY_BIASES, MAX_CANDIDATES, SEMANTIC_THRESHOLDS, repeat_control_problem

# What the model sees: a change to any of these makes a new version (and new cache keys).
CONTENT_FIELDS = (
    "body", "system_prompt", "language", "max_new_tokens", "variables", "outputs", "no_repeat_ngram",
    "repetition_penalty", "candidates", "copy_bias",
)  # fmt: skip


def default_no_repeat_ngram() -> int:
    return settings.EDGE_NO_REPEAT_NGRAM  # read when a template is made: the node's setting, not the code's


def default_repetition_penalty() -> float:
    return settings.EDGE_REPETITION_PENALTY


def default_copy_bias() -> float:
    return settings.EDGE_COPY_BIAS


class PromptTemplate(models.Model):
    slug = models.SlugField(max_length=80, unique=True, verbose_name=_("slug"))
    title = models.CharField(max_length=200, verbose_name=_("title"))
    description = models.CharField(
        blank=True,
        max_length=500,
        help_text=_("One or two lines for the submit form: what it is for, when to use it."),
        verbose_name=_("description"),
    )
    body = models.TextField(
        help_text=_("Use {name} for a variable; names are letters, digits and underscores."), verbose_name=_("body")
    )
    system_prompt = models.TextField(blank=True, verbose_name=_("system prompt"))
    language = models.CharField(
        max_length=20, default="en", help_text=_("Language of the output, e.g. en, zh, es."), verbose_name=_("language")
    )
    max_new_tokens = models.PositiveIntegerField(default=32, verbose_name=_("max new tokens"))
    variables = models.JSONField(
        default=list,
        blank=True,
        help_text=_(
            'Declared types, e.g. [{"name": "line", "type": "choice", "choices": ["A", "B"]}, '
            '{"name": "minutes", "type": "integer", "min": 1, "max": 60}, {"name": "defect", "max_length": 80}]. '
            "Undeclared variables are text. Each may also have a label, a help line and an example for the "
            "submit form."
        ),
        verbose_name=_("variables"),
    )
    outputs = models.JSONField(
        default=list,
        blank=True,
        help_text=_(
            "One output per consumer, each with a language, a format (text, or json with a schema), an "
            'instruction, and made from the request or from an earlier output, e.g. [{"name": "ticket", '
            '"language": "zh", "instruction": "Summarise for the quality ticket."}, {"name": "mes", '
            '"language": "en", "from": "ticket"}]. Empty: one text output.'
        ),
        verbose_name=_("outputs"),
    )
    # Repeats are judged within the output only (inference.repetition): an answer may copy the request's ids.
    no_repeat_ngram = models.PositiveSmallIntegerField(
        default=default_no_repeat_ngram,
        help_text=_("The output may not repeat a run of this many tokens (2 to 16; 0: off). Ends loops."),
        verbose_name=_("no repeat ngram"),
    )
    repetition_penalty = models.FloatField(
        default=default_repetition_penalty,
        help_text=_("Makes tokens the output already has less likely again (1 to 2; 1: off)."),
        verbose_name=_("repetition penalty"),
    )
    copy_bias = models.FloatField(
        default=default_copy_bias,
        help_text=_(
            "Makes the request's ids and numbers (P3, 120 °C) more likely while the output lacks them (0 to 8; 0: off)."
        ),
        verbose_name=_("copy bias"),
    )
    candidates = models.PositiveSmallIntegerField(
        default=1,
        help_text=_(
            "Answers generated per job in the same batch; the CPU reranker keeps the best (1 to 8; 1: no reranking)."
        ),
        verbose_name=_("candidates"),
    )
    # Not a content field: what the model sees is the same, only whether a close request may answer (and the
    # entries kept for the version stay).
    semantic_cache = models.FloatField(
        null=True,
        blank=True,
        help_text=_(
            "Semantic cache: a job whose free-text values are this close (cosine, 0.8 to 0.999) to an earlier "
            "job's, with the same ids, numbers and choices, takes its answer. Empty: off."
        ),
        verbose_name=_("semantic cache"),
    )
    sources = models.ManyToManyField(
        "sources.Source",
        blank=True,
        related_name="templates",
        help_text=_("Machine sources that may use it; none: all."),
        verbose_name=_("sources"),
    )
    deadline_ms = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text=_("Default deadline of its jobs in ms; empty uses the scheduler's default."),
        verbose_name=_("deadline (ms)"),
    )
    managers_may_use = models.BooleanField(
        default=True, help_text=_("Offer it in the managers' submit form."), verbose_name=_("managers may use")
    )
    model = models.CharField(
        max_length=64,
        blank=True,
        help_text=_("The model its jobs run on (one of EDGE_MODELS); empty: the default."),
        verbose_name=_("model"),
    )
    version = models.PositiveIntegerField(default=0, editable=False, verbose_name=_("version"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))
    updated_at = models.DateTimeField(auto_now=True, verbose_name=_("updated at"))

    class Meta:
        verbose_name = _("prompt template")
        verbose_name_plural = _("prompt templates")
        ordering = ["title"]

    def __str__(self) -> str:
        return self.title

    def variable_spec(self) -> list[Variable]:
        return parse_spec(self.variables, template_variables(self.body))

    def clean(self) -> None:
        try:
            names = template_variables(self.body)
        except TemplateSyntaxProblem as problem:
            raise ValidationError({"body": str(problem)}) from None
        try:
            parse_spec(self.variables, names)
        except VariableError as error:
            raise ValidationError({"variables": str(error)}) from None
        try:
            parse_outputs(self.outputs, default_language=self.language)
        except OutputSpecError as error:
            raise ValidationError({"outputs": str(error)}) from None
        limit = settings.EDGE_MAX_PROMPT_CHARS
        if len(self.body) > limit * RAW_LENGTH_FACTOR:  # every job would be refused as too long
            raise ValidationError(
                {
                    "body": gettext("The body has %(chars)d characters; a prompt may have %(limit)d.")
                    % {"chars": len(self.body), "limit": limit}
                }
            )
        if not 1 <= self.max_new_tokens <= 1024:
            raise ValidationError({"max_new_tokens": gettext("Must be between 1 and 1024.")})
        if problem := repeat_control_problem(repetition_penalty=self.repetition_penalty,
                                             no_repeat_ngram=self.no_repeat_ngram):  # fmt: skip
            field, message = problem
            raise ValidationError({field: message[:1].upper() + message[1:]})
        low, high = COPY_BIASES
        if not low <= self.copy_bias <= high:  # NaN fails too
            raise ValidationError(
                {
                    "copy_bias": gettext("Must be between %(low)s (off) and %(high)s.")
                    % {"low": f"{low:g}", "high": f"{high:g}"}
                }
            )
        low, high = SEMANTIC_THRESHOLDS
        if self.semantic_cache is not None and not low <= self.semantic_cache <= high:  # NaN fails too
            raise ValidationError(
                {
                    "semantic_cache": gettext("Must be between %(low)s and %(high)s, or empty (off).")
                    % {"low": low, "high": high}
                }
            )
        if self.semantic_cache is not None and self.outputs:  # each output is a run of its own, never cached
            raise ValidationError(
                {"semantic_cache": gettext("A template with outputs has no semantic cache; leave it empty.")}
            )
        if not 1 <= self.candidates <= MAX_CANDIDATES:
            raise ValidationError({"candidates": gettext("Must be between 1 and %(high)d.") % {"high": MAX_CANDIDATES}})
        catalog = model_catalog()
        if self.model and not catalog.knows(self.model):
            raise ValidationError(
                {"model": gettext("Unknown model; this node serves %(models)s.") % {"models": ", ".join(catalog.names)}}
            )

    def output_specs(self) -> list[OutputSpec]:
        return parse_outputs(self.outputs, default_language=self.language)

    def usable_by_source(self, source) -> bool:
        return not self.sources.exists() or self.sources.filter(pk=source.pk).exists()


class TemplateVersion(models.Model):
    """What a template said at one version; jobs name the version they ran."""

    template = models.ForeignKey(
        PromptTemplate, on_delete=models.CASCADE, related_name="versions", verbose_name=_("template")
    )
    version = models.PositiveIntegerField(verbose_name=_("version"))
    body = models.TextField(verbose_name=_("body"))
    system_prompt = models.TextField(blank=True, verbose_name=_("system prompt"))
    language = models.CharField(max_length=20, verbose_name=_("language"))
    max_new_tokens = models.PositiveIntegerField(verbose_name=_("max new tokens"))
    variables = models.JSONField(default=list, blank=True, verbose_name=_("variables"))
    outputs = models.JSONField(default=list, blank=True, verbose_name=_("outputs"))
    no_repeat_ngram = models.PositiveSmallIntegerField(
        default=0, verbose_name=_("no repeat ngram")
    )  # 0 and 1: what versions before them ran
    repetition_penalty = models.FloatField(default=1.0, verbose_name=_("repetition penalty"))
    candidates = models.PositiveSmallIntegerField(default=1, verbose_name=_("candidates"))
    copy_bias = models.FloatField(default=0.0, verbose_name=_("copy bias"))  # 0: what versions before it ran
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, verbose_name=_("created by")
    )
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))

    class Meta:
        verbose_name = _("template version")
        verbose_name_plural = _("template versions")
        ordering = ["-version"]
        constraints = [models.UniqueConstraint(fields=["template", "version"], name="one_row_per_template_version")]

    def __str__(self) -> str:
        return f"{self.template.slug} v{self.version}"


class BlockedPattern(models.Model):
    """A regular expression the guard refuses in variable values and free prompts (case-insensitive)."""

    pattern = models.CharField(max_length=500, unique=True, verbose_name=_("pattern"))
    description = models.CharField(max_length=200, blank=True, verbose_name=_("description"))
    is_active = models.BooleanField(default=True, verbose_name=_("is active"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))

    class Meta:
        verbose_name = _("blocked phrase")
        verbose_name_plural = _("blocked phrases")

    def __str__(self) -> str:
        return self.pattern

    def clean(self) -> None:
        try:
            re.compile(self.pattern)
        except re.error as error:
            raise ValidationError(
                {"pattern": gettext("Not a valid regular expression: %(error)s.") % {"error": error}}
            ) from None
