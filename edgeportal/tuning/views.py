"""The admins' tuning page: scheduler settings that running workers pick up within a second."""

from dataclasses import asdict

import redis
from django.shortcuts import render

from edgeportal.accounts.decorators import admin_required
from edgeportal.jobs.queueing import get_settings_store
from edgeportal.tuning.forms import TuningForm
from edgeportal.tuning.selectors import setting_changes, workers_applied
from edgeportal.tuning.services import TuningRejected, settings_save

UNREACHABLE = "Redis is not reachable: the workers cannot be told. Nothing was saved."


@admin_required
def tuning_page(request):
    store = get_settings_store()
    status, saved = 200, None
    try:
        current, version = store.current_with_version()
    except redis.RedisError:
        current, version, status = store.defaults, 0, 503
    if request.method == "POST":
        form = TuningForm(request.POST)
        if not form.is_valid():
            status = 400
        elif status == 503:
            form.add_error(None, UNREACHABLE)
        else:
            try:
                saved = settings_save(user=request.user, values=form.cleaned_data)
            except TuningRejected as rejected:
                for name, message in rejected.errors.items():
                    form.add_error(name, message)
                status = 400
            except redis.RedisError:
                form.add_error(None, UNREACHABLE)
                status = 503
            else:
                version = saved[0].version if saved else version
    else:
        form = TuningForm(initial=asdict(current))
    context = {"form": form, "saved": saved, "version": version, "changes": setting_changes(), "status": status}
    name = "tuning/main.html" if request.htmx else "tuning/page.html"
    return render(request, name, context, status=status)


@admin_required
def tuning_workers(request):
    """Polled by the page: each worker's applied settings version and its effective window."""
    try:
        version = get_settings_store().current_with_version()[1]
        workers, error = workers_applied(version=version), None
    except redis.RedisError:
        version, workers, error = 0, [], "Redis is not reachable: no worker status."
    context = {"workers": workers, "version": version, "error": error}
    return render(request, "tuning/workers.html", context)
