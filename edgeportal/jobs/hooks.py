"""The calls jobs makes into the outputs app, which sits above it (an output's runs are jobs, so outputs imports
jobs and not the other way round).

Outputs connects its functions in OutputsConfig.ready(); jobs calls them where it used to import them: in place,
synchronously, inside the caller's transaction, so the order of writes and a failure's rollback are unchanged.
"""

from collections.abc import Callable

from django.core.exceptions import ImproperlyConfigured

# outputs_accept(fields, specs, ticket, scheduler) -> Job: a job whose template declares outputs, and its runs
# runs_ended(runs=jobs): jobs just ended (some may be outputs' runs): their outputs checked, what follows started
# outputs_settle(grace_s=...) -> int: jobs with outputs past their deadline finished (the sweep)
HOOKS = ("outputs_accept", "runs_ended", "outputs_settle")
_connected: dict[str, Callable] = {}


def connect(name: str, function: Callable) -> None:
    if name not in HOOKS:
        raise ValueError(f"jobs has no hook {name!r}: one of {', '.join(HOOKS)}")
    _connected[name] = function


def hook(name: str) -> Callable:
    try:
        return _connected[name]
    except KeyError:
        raise ImproperlyConfigured(
            f"nothing is connected to jobs' {name!r} hook: edgeportal.outputs connects it when its app is ready"
        ) from None
