"""Admin pages for prompt templates: the list with cache hit rates, and each template's versions with diffs."""

from django.contrib import messages
from django.contrib.auth.decorators import user_passes_test
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from edgeportal.accounts.roles import is_admin
from edgeportal.prompts.models import PromptTemplate, TemplateVersion
from edgeportal.prompts.selectors import templates_with_hit_rate
from edgeportal.prompts.services import template_rollback, version_diff


def admin_required(view):
    def check(user):
        if not is_admin(user):
            raise PermissionDenied("Only admins can manage prompt templates.")
        return True

    return user_passes_test(check)(view)


@admin_required
def template_list(request):
    return render(request, "prompts/template_list.html", {"templates": templates_with_hit_rate()})


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
    new = template_rollback(template=template, version=version, user=request.user)
    messages.success(request, f"Version {version} is current again, as version {new.version}.")
    return redirect("prompts:versions", slug=slug)
