"""The template editor's "try it": a test job from a saved template with the editor's sample values.

A jobs page, as it submits a job (prompts sits below jobs); its URL name stays prompts:try.
"""

import json

from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_POST

from edgeportal.accounts.decorators import admin_required
from edgeportal.jobs.entry import PAGE_DECODING, JobRejected, job_submit
from edgeportal.prompts.forms import sample_values
from edgeportal.prompts.models import PromptTemplate


@require_POST
@admin_required
def template_try(request, slug: str):
    """Submit a test job from the saved template with the sample values; the result appears inline."""
    template = get_object_or_404(PromptTemplate, slug=slug)
    try:
        sample = json.loads(request.POST.get("sample") or "{}")
    except (ValueError, RecursionError):  # a syntax error, a huge integer, deep nesting
        sample = {}
    values = sample_values(template.variable_spec(), sample)
    try:
        job = job_submit(
            template_slug=slug, variables=values, user=request.user, allow_free_prompt=False, decoding=PAGE_DECODING
        )
    except JobRejected as rejected:
        # 200, so htmx swaps it in: the message is the answer to "try it".
        return render(request, "prompts/try_error.html", {"message": rejected.message})
    return render(request, "jobs/job_status.html", {"job": job})
