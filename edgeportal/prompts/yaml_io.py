"""Templates as YAML, so teams keep them in version control: export all, import all-or-nothing."""

from __future__ import annotations

import re

import yaml
from django.core.exceptions import ValidationError
from django.db import transaction

from edgeportal.prompts.models import CONTENT_FIELDS, PromptTemplate
from edgeportal.prompts.services import template_save
from edgeportal.sources.models import Source
from inference.integers import IntegerError, parse_int

FIELDS = (
    "slug", "title", "description", "body", "system_prompt", "language", "max_new_tokens", "variables",
    "outputs", "no_repeat_ngram", "repetition_penalty", "copy_bias", "candidates", "semantic_cache", "managers_may_use",
    "model",
)  # fmt: skip
REQUIRED = ("slug", "title", "body")
TEXT = ("description", "system_prompt", "language", "model")


class ImportProblem(ValueError):
    def __init__(self, message: str, *, template: str | None = None, field: str | None = None):
        where = " ".join(part for part in (f"template {template!r}" if template else "", field or "") if part)
        super().__init__(f"{where}: {message}" if where else message)
        self.template = template
        self.field = field


class _StrictLoader(yaml.SafeLoader):
    """YAML as people read it: an integer is plain decimal digits, and there are no aliases.

    YAML 1.1 (PyYAML) reads 1_000 as 1000, 012 as 10 (octal), 0x10 as 16 and 1:30 as 90; here they stay text,
    which the fields then refuse by name. An alias repeats a node without repeating its text, so a small file
    could expand to gigabytes when a field is turned into text or JSON (a "billion laughs").
    """

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise yaml.composer.ComposerError(None, None, "aliases (*name) are not allowed in a templates file", mark)
        return super().compose_node(parent, index)


_StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:int"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_StrictLoader.add_implicit_resolver("tag:yaml.org,2002:int", re.compile(r"^[-+]?[0-9]+$"), list("-+0123456789"))
_StrictLoader.add_constructor("tag:yaml.org,2002:int", lambda loader, node: int(loader.construct_scalar(node), 10))


class _PlainDumper(yaml.SafeDumper):
    def ignore_aliases(self, data) -> bool:
        return True  # the loader refuses aliases, so the export never writes one


def templates_export() -> str:
    templates = []
    for template in PromptTemplate.objects.prefetch_related("sources").order_by("slug"):
        item = {name: getattr(template, name) for name in FIELDS}
        item["sources"] = sorted(source.name for source in template.sources.all())
        templates.append(item)
    return yaml.dump({"templates": templates}, Dumper=_PlainDumper, allow_unicode=True, sort_keys=False, width=100)


def _checked(item: object, index: int, seen: set[str]) -> tuple[PromptTemplate, list[Source]]:
    if not isinstance(item, dict):
        raise ImportProblem(f"entry {index + 1} is not a mapping of fields")
    slug = item.get("slug")
    name = slug if isinstance(slug, str) else f"#{index + 1}"
    for field in REQUIRED:
        if not isinstance(item.get(field), str) or not item[field].strip():
            raise ImportProblem("is required and must be text", template=name, field=field)
    unknown = sorted(map(str, set(item) - set(FIELDS) - {"sources"}))
    if unknown:
        raise ImportProblem(f"unknown field(s) {', '.join(unknown)}", template=name)
    for field in TEXT:
        if field in item and not isinstance(item[field], str):
            raise ImportProblem("must be text", template=name, field=field)
    if "managers_may_use" in item and not isinstance(item["managers_may_use"], bool):
        raise ImportProblem("must be true or false", template=name, field="managers_may_use")
    for field in ("variables", "outputs"):
        if field in item and item[field] is None:  # "variables:" with nothing after it
            item = {**item, field: []}
    for field in ("max_new_tokens", "no_repeat_ngram", "candidates"):  # their ranges: PromptTemplate.clean
        if field in item:
            try:
                item = {**item, field: parse_int(item[field], field=field)}
            except IntegerError as error:
                raise ImportProblem(error.message.removeprefix(f"{field} "), template=name, field=field) from None
    for field, default in (
        ("repetition_penalty", 1.0),
        ("copy_bias", 0.0),
        ("semantic_cache", None),
    ):  # ranges: PromptTemplate.clean
        value = item.get(field, default)
        if value is not default and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise ImportProblem("must be a number" + (" or empty" if default is None else ""), template=name,
                                field=field)  # fmt: skip
    if slug in seen:
        raise ImportProblem("appears twice in the file", template=name)
    seen.add(slug)
    source_names = item.get("sources") or []
    if not isinstance(source_names, list) or not all(isinstance(source, str) for source in source_names):
        raise ImportProblem("must be a list of source names", template=name, field="sources")
    sources = list(Source.objects.filter(name__in=source_names))
    missing = sorted(set(source_names) - {s.name for s in sources})
    if missing:
        raise ImportProblem(f"no such source(s): {', '.join(map(str, missing))}", template=name, field="sources")
    template = PromptTemplate.objects.filter(slug=slug).first() or PromptTemplate(slug=slug)
    for field in FIELDS:
        if field in item:
            setattr(template, field, item[field])
    try:
        template.full_clean()
    except ValidationError as error:
        field, messages = next(iter(error.message_dict.items()))
        raise ImportProblem(" ".join(messages), template=name, field=field) from None
    except (TypeError, ValueError) as error:
        raise ImportProblem(str(error), template=name) from None
    return template, sources


def _holds_nul(value: object) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(key) or _holds_nul(item) for key, item in value.items())
    return isinstance(value, list) and any(_holds_nul(item) for item in value)


def templates_import(text: str, *, user=None) -> list[str]:
    """Validate every template first; change nothing on any error. Returns what changed, one line each."""
    try:
        data = yaml.load(text, Loader=_StrictLoader)
    except yaml.YAMLError as error:
        raise ImportProblem(f"not valid YAML: {error}") from None
    if not isinstance(data, dict) or not isinstance(data.get("templates"), list):
        raise ImportProblem("the file must hold a mapping with a 'templates' list")
    if _holds_nul(data):  # a "\0" escape: no field stores it, and PostgreSQL can't even look it up
        raise ImportProblem("the file holds a NUL character (\\0), which no field accepts")
    seen: set[str] = set()
    checked = [_checked(item, index, seen) for index, item in enumerate(data["templates"])]
    changes = []
    with transaction.atomic():
        for template, sources in checked:
            is_new = template.pk is None
            settings_changed = [] if is_new else _settings_changed(template, sources)
            version = template_save(template=template, user=user)
            template.sources.set(sources)
            if is_new:
                changes.append(f"created {template.slug} (version {template.version})")
            elif version is not None:
                changes.append(f"updated {template.slug} to version {template.version}")
            elif settings_changed:
                changes.append(
                    f"updated {template.slug}: {', '.join(settings_changed)} (version {template.version} kept: "
                    "what the model sees is unchanged)"
                )
            else:
                changes.append(f"unchanged {template.slug} (version {template.version})")
    return changes


def _settings_changed(template: PromptTemplate, sources: list[Source]) -> list[str]:
    """The fields outside what the model sees (no new version) that the import changes, in FIELDS' order."""
    stored = PromptTemplate.objects.get(pk=template.pk)
    changed = [
        name for name in FIELDS if name not in CONTENT_FIELDS and getattr(stored, name) != getattr(template, name)
    ]
    if {source.pk for source in stored.sources.all()} != {source.pk for source in sources}:
        changed.append("sources")
    return changed
