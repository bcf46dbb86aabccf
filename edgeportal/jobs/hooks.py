"""The calls jobs makes into the outputs app, which sits above it (an output's runs are jobs, so outputs imports
jobs and not the other way round).

Outputs connects its functions in OutputsConfig.ready(), by dotted path: they are imported on their first call,
as the lazy imports they replace were, so setting Django up loads no service module (nor prometheus_client).
Jobs calls them where it used to import them: in place, synchronously, inside the caller's transaction, so the
order of writes and a failure's rollback are unchanged.
"""

from collections.abc import Callable

from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

# outputs_accept(fields, specs, ticket, scheduler) -> Job: a job whose template declares outputs, and its runs
# runs_ended(runs=jobs): jobs just ended (some may be outputs' runs): their outputs checked, what follows started
# outputs_settle(grace_s=...) -> int: jobs with outputs past their deadline finished (the sweep)
HOOKS = ("outputs_accept", "runs_ended", "outputs_settle")
_connected: dict[str, str] = {}


def connect(name: str, path: str) -> None:
    """Connect the function at path (module.function) to the hook name."""
    if name not in HOOKS:
        raise ValueError(f"jobs has no hook {name!r}: one of {', '.join(HOOKS)}")
    _connected[name] = path


def hook(name: str) -> Callable:
    try:
        return import_string(_connected[name])
    except KeyError:
        raise ImproperlyConfigured(
            f"nothing is connected to jobs' {name!r} hook: edgeportal.outputs connects it when its app is ready"
        ) from None
