"""Manager pages: submit a job, list jobs, watch one; htmx requests get only the fragment."""

from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _

from edgeportal.accounts.decorators import manager_required
from edgeportal.accounts.roles import is_admin
from edgeportal.echo import quoted
from edgeportal.jobs import selectors
from edgeportal.jobs.entry import PAGE_DECODING, JobRejected, job_submit
from edgeportal.jobs.forms import JobSubmitForm
from edgeportal.jobs.models import Job
from edgeportal.prompts.models import PromptTemplate


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
                    deadline_ms=form.cleaned_data["deadline_ms"],
                    model=form.cleaned_data.get("model"),
                    decoding=PAGE_DECODING,
                    user=request.user,
                    allow_free_prompt=may_free,
                )
            except JobRejected as rejected:
                form.add_rejection(rejected.field, rejected.message)
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
    }
    name = "jobs/submit_form.html" if request.htmx and request.method == "GET" else "jobs/new.html"
    return render(request, name, context, status=status)


@manager_required
def job_list(request):
    context = {"jobs": selectors.job_list(), "depth": selectors.queue_depth()}
    context["polling"] = any(not job.is_finished for job in context["jobs"])
    return render(request, "jobs/job_rows.html" if request.htmx else "jobs/list.html", context)


@manager_required
def job_detail(request, job_id: int):
    job = get_object_or_404(Job.objects.select_related("template", "latency", "batch"), pk=job_id)
    return render(request, "jobs/job_status.html" if request.htmx else "jobs/detail.html", {"job": job})
