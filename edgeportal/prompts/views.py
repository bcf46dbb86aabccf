"""Admin pages for prompt templates: the list with hit rates, the editor with live preview, and each
template's versions with diffs and rollback. The editor's "try it" submits a job: edgeportal/jobs/template_try.py."""

import json

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from edgeportal.accounts.decorators import admin_required
from edgeportal.core.queueing import model_catalog
from edgeportal.core.text import normalise
from edgeportal.prompts.cache import cache_clear
from edgeportal.prompts.forms import TemplateForm, sample_values
from edgeportal.prompts.guard import RAW_LENGTH_FACTOR
from edgeportal.prompts.models import PromptTemplate, TemplateVersion
from edgeportal.prompts.rendering import RenderError, TemplateSyntaxProblem, template_variables
from edgeportal.prompts.rendering import render as render_body
from edgeportal.prompts.selectors import templates_with_hit_rate
from edgeportal.prompts.services import template_rollback, template_save, version_diff
from edgeportal.prompts.tokens import count_tokens
from edgeportal.prompts.variables import VariableError, parse_spec


@admin_required
def template_list(request):
    return render(request, "prompts/template_list.html", {"templates": templates_with_hit_rate()})


@require_POST
@admin_required
def cache_clear_view(request):
    messages.success(request, _("Cleared the prompt cache (%(count)d result(s)).") % {"count": cache_clear()})
    return redirect("prompts:list")


@admin_required
def template_versions(request, slug: str):
    template = get_object_or_404(PromptTemplate, slug=slug)
    versions = list(template.versions.select_related("created_by"))
    older = {v.version: v for v in versions}
    rows = [(version, version_diff(older.get(version.version - 1), version)) for version in versions]
    return render(request, "prompts/template_versions.html", {"template": template, "rows": rows})


@require_POST
@admin_required
def template_rollback_view(request, slug: str, version: int):
    template = get_object_or_404(PromptTemplate, slug=slug)
    get_object_or_404(TemplateVersion, template=template, version=version)
    try:
        new = template_rollback(template=template, version=version, user=request.user)
    except ValidationError as error:  # the template no longer saves as it is (its model left EDGE_MODELS, say)
        messages.error(
            request,
            _("Version %(version)d was not restored: %(why)s") % {"version": version, "why": " ".join(error.messages)},
        )
        return redirect("prompts:versions", slug=slug)
    messages.success(
        request,
        _("Version %(version)d is current again, as version %(new)d.") % {"version": version, "new": new.version},
    )
    return redirect("prompts:versions", slug=slug)


def _editor(request, template: PromptTemplate):
    form = TemplateForm(request.POST or None, instance=template)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                version = template_save(template=form.save(commit=False), user=request.user)
            except ValidationError as error:
                form.add_error(None, error)
            else:
                form.save_m2m()
                saved = form.instance
                note = (
                    _("Saved as version %(version)d.") % {"version": saved.version}
                    if version
                    else _("Saved; what the model sees is unchanged.")
                )
                messages.success(request, note)
                return redirect("prompts:edit", slug=saved.slug)
        status = 400
    context = {"form": form, "template": template, **_preview_context(form)}
    return render(request, "prompts/template_edit.html", context, status=status)


@admin_required
def template_new(request):
    return _editor(request, PromptTemplate())


@admin_required
def template_edit(request, slug: str):
    return _editor(request, get_object_or_404(PromptTemplate, slug=slug))


def _preview_context(form: TemplateForm) -> dict:
    """The prompt the draft renders from sample values, with its token count, or what stops it."""
    data = form.data
    body = data.get("body", form.initial.get("body", "")) if form.is_bound else (form.instance.body or "")
    if not body:
        return {}
    try:
        raw_variables = json.loads(data.get("variables") or "[]") if form.is_bound else form.instance.variables
        raw_sample = json.loads(data.get("sample") or "{}") if form.is_bound else {}
        spec = parse_spec(raw_variables, template_variables(body))
        values = {name: str(value) for name, value in sample_values(spec, raw_sample).items()}
        rendered = render_body(body, values)
        limit = settings.EDGE_MAX_PROMPT_CHARS
        if len(rendered) > limit * RAW_LENGTH_FACTOR:  # refused before NFKC, which can grow it 18-fold
            return {
                "preview_error": _("The prompt has %(chars)d characters; the limit is %(limit)d.")
                % {"chars": len(rendered), "limit": limit}
            }
        prompt = normalise(rendered)
    except (TemplateSyntaxProblem, VariableError, RenderError) as error:
        return {"preview_error": str(error)}
    except (ValueError, RecursionError) as error:  # JSON: a syntax error, a huge integer, deep nesting
        return {"preview_error": _("Variables or sample are not valid JSON: %(error)s.") % {"error": error}}
    model = data.get("model") if form.is_bound else form.instance.model
    model = model if isinstance(model, str) and model_catalog().knows(model) else None
    return {"preview": prompt, "preview_tokens": count_tokens(prompt, model=model)}


@require_POST
@admin_required
def template_preview(request):
    return render(request, "prompts/preview.html", _preview_context(TemplateForm(request.POST)))
