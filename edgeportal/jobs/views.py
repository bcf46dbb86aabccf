"""Manager pages: submit a job, list jobs, watch one; htmx requests get only the fragment."""

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from edgeportal.accounts.decorators import manager_required
from edgeportal.accounts.roles import is_admin
from edgeportal.echo import quoted
from edgeportal.jobs import selectors
from edgeportal.jobs.entry import PAGE_DECODING, JobRejected, job_submit
from edgeportal.jobs.forms import VARIABLE_PREFIX, JobSubmitForm
from edgeportal.jobs.models import Job
from edgeportal.jobs.previews import SubmitPreview, submit_preview
from edgeportal.prompts.models import PromptTemplate
from edgeportal.prompts.routing import template_suggestions


def _templates_for(user):
    """Managers see the templates offered to them; admins see all."""
    templates = PromptTemplate.objects.all()
    return templates if is_admin(user) else templates.filter(managers_may_use=True)


def _chosen_template(request, templates) -> tuple[PromptTemplate | None, str]:
    """The template named in the request, or an error message for the form if there is no such template."""
    slug = (request.POST.get("template") if request.method == "POST" else request.GET.get("template")) or ""
    if not slug:
        return None, ""
    template = templates.filter(slug=slug).first()
    return template, "" if template else _("There is no template %(slug)s; pick one from the list.") % {
        "slug": quoted(slug)
    }


@manager_required
def job_new(request):
    may_free = request.user.has_perm("jobs.submit_free_prompt")
    templates = _templates_for(request.user)
    template, template_error = _chosen_template(request, templates)
    if template is None and not may_free:
        if request.method == "POST" and not template_error:
            raise PermissionDenied(_("You may only submit jobs from prompt templates."))
        template = templates.first()
    status = 200
    if template_error:
        form = JobSubmitForm(template=template)
        status = 400
    elif request.method == "POST":
        form = JobSubmitForm(request.POST, template=template)
        if form.is_valid():
            try:
                job = job_submit(
                    template_slug=template.slug if template else None,
                    variables=form.variables() if template else None,
                    prompt=None if template else form.cleaned_data["prompt"],
                    priority=form.cleaned_data["priority"],
                    deadline_ms=form.deadline_ms(),
                    model=form.cleaned_data.get("model"),
                    decoding=PAGE_DECODING,
                    user=request.user,
                    allow_free_prompt=may_free,
                )
            except JobRejected as rejected:
                form.add_rejection(rejected.field, _page_message(rejected))
                status = rejected.status
            else:
                return redirect("jobs:detail", job_id=job.pk)
        else:
            status = 400
    else:
        form = JobSubmitForm(template=template)
    context = {
        "form": form,
        "template": template,
        "template_error": template_error,
        "templates": templates,
        "may_free": may_free,
        "preview": _preview(form, template),
    }
    name = "jobs/submit_form.html" if request.htmx and request.method == "GET" else "jobs/new.html"
    return render(request, name, context, status=status)


def _page_message(rejected: JobRejected) -> str:
    """A refusal as a person reads it: when the node is busy, say so first, with when to try again."""
    if rejected.status == 429 and rejected.reason:
        busy = _("The node is busy: retry in %(seconds)d s.") % {"seconds": rejected.retry_after}
        return f"{busy} {rejected.reason}."
    return rejected.message


def _preview(form: JobSubmitForm, template: PromptTemplate | None) -> SubmitPreview:
    """The preview of what was typed so far: a value its field refuses is named with the field's own message
    (in the page's language); empty fields are only "still to fill in"."""
    data = form.data if form.is_bound else {}
    names = [name for name in form.fields if name.startswith(VARIABLE_PREFIX)]
    refused = [
        f"{form[name].label}: {' '.join(form.errors[name])}" for name in names if data.get(name) and name in form.errors
    ]
    if refused:
        return SubmitPreview(problem=" ".join(refused))
    values = {name.removeprefix(VARIABLE_PREFIX): data.get(name, "") for name in names}
    return submit_preview(template=template, values=values, prompt=data.get("prompt", ""))


@require_POST
@manager_required
def job_preview(request):
    """The submit form's live preview (htmx, on input): the prompt the model would read and its tokens."""
    may_free = request.user.has_perm("jobs.submit_free_prompt")
    template, template_error = _chosen_template(request, _templates_for(request.user))
    if template_error or (template is None and not may_free):
        return render(request, "jobs/submit_preview.html", {"preview": SubmitPreview(problem=template_error)})
    form = JobSubmitForm(request.POST, template=template)
    return render(request, "jobs/submit_preview.html", {"preview": _preview(form, template)})


@require_POST
@manager_required
def job_route(request):
    """The free prompt's template suggestion (htmx, on input): the templates this user may pick that are
    closest to what is typed, or nothing."""
    if not request.user.has_perm("jobs.submit_free_prompt"):
        raise PermissionDenied(_("You may only submit jobs from prompt templates."))
    prompt = request.POST.get("prompt", "")
    if len(prompt) > settings.EDGE_MAX_PROMPT_CHARS:  # the form refuses it too; no work for a prompt never sent
        return render(request, "jobs/submit_route.html", {"suggestions": []}, status=400)
    suggestions = template_suggestions(prompt, _templates_for(request.user))
    return render(request, "jobs/submit_route.html", {"suggestions": suggestions})


@manager_required
def job_list(request):
    context = {"jobs": selectors.job_list(), "depth": selectors.queue_depth()}
    context["polling"] = any(not job.is_finished for job in context["jobs"])
    return render(request, "jobs/job_rows.html" if request.htmx else "jobs/list.html", context)


@manager_required
def job_detail(request, job_id: int):
    job = get_object_or_404(Job.objects.select_related("template", "latency", "batch"), pk=job_id)
    if request.htmx:
        return render(request, "jobs/job_status.html", {"job": job})
    return render(request, "jobs/detail.html", {"job": job, "conversation": selectors.job_conversation(job)})
