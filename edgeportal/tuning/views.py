"""The admins' tuning page: scheduler settings that running workers pick up within a second."""

from dataclasses import asdict

import redis
from django.db import DatabaseError
from django.shortcuts import render
from django.utils.translation import gettext_lazy as _

from edgeportal.accounts.decorators import admin_required
from edgeportal.tuning.forms import TuningForm
from edgeportal.tuning.selectors import saved_settings, setting_changes, workers_applied
from edgeportal.tuning.services import TuningRejected, settings_save

DATABASE_DOWN = _("The database did not answer: nothing was saved. Try again shortly.")


@admin_required
def tuning_page(request):
    current, version = saved_settings()
    status, saved = 200, None
    if request.method == "POST":
        form = TuningForm(request.POST)
        if not form.is_valid():
            status = 400
        else:
            try:
                saved = settings_save(user=request.user, values=form.cleaned_data)
            except TuningRejected as rejected:
                for name, message in rejected.errors.items():
                    form.add_error(name, message)
                status = 400
            except DatabaseError:
                form.add_error(None, DATABASE_DOWN)
                status = 503
            else:
                version = saved.version
    else:
        form = TuningForm(initial=asdict(current))
    context = {"form": form, "saved": saved, "version": version, "changes": setting_changes(), "status": status}
    name = "tuning/main.html" if request.htmx else "tuning/page.html"
    return render(request, name, context, status=status)


@admin_required
def tuning_workers(request):
    """Polled by the page: each worker's applied settings version (against the saved one) and its window."""
    version = saved_settings()[1]
    try:
        workers, error = workers_applied(version=version), None
    except redis.RedisError:
        workers, error = [], _("Redis is not reachable: no worker status.")
    context = {"workers": workers, "version": version, "error": error}
    return render(request, "tuning/workers.html", context)
