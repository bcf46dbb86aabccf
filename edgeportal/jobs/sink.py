"""The worker's ResultSink backed by the database: how inference reports back without importing Django."""

from collections.abc import Callable
from functools import wraps

from django.db import InterfaceError, OperationalError, close_old_connections

from edgeportal.jobs import services
from inference.batch import BatchRun
from inference.worker import StorageUnavailable


def _storing(write: Callable) -> Callable:
    """A write of the worker's: on a fresh connection (the worker loop runs in its own thread for days, and
    the database may have closed the old one), and with an unreachable or locked database reported as
    StorageUnavailable, which the worker waits out rather than giving up on outputs it has."""

    @wraps(write)
    def wrapper(*args, **kwargs):
        close_old_connections()
        try:
            return write(*args, **kwargs)
        except (OperationalError, InterfaceError) as error:
            raise StorageUnavailable(str(error)) from error

    return wrapper


class DatabaseSink:
    @_storing
    def batch_started(self, batch: BatchRun) -> None:
        services.jobs_mark_running(batch=batch)

    @_storing
    def batch_finished(self, batch: BatchRun) -> None:
        services.batch_record(batch=batch)

    @_storing
    def jobs_failed(self, job_ids: list[int], reason: str) -> None:
        services.jobs_fail(job_ids=job_ids, reason=reason)

    @_storing
    def jobs_expired(self, reasons: dict[int, str]) -> None:
        services.jobs_expire(reasons=reasons)
