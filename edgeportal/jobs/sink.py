"""The worker's ResultSink backed by the database: how inference reports back without importing Django."""

from django.db import close_old_connections

from edgeportal.jobs import services
from inference.worker import BatchRun


class DatabaseSink:
    # The worker loop runs in its own thread for days: drop connections the database closed meanwhile.
    def batch_started(self, batch: BatchRun) -> None:
        close_old_connections()
        services.jobs_mark_running(batch=batch)

    def batch_finished(self, batch: BatchRun) -> None:
        close_old_connections()
        services.batch_record(batch=batch)

    def jobs_failed(self, job_ids: list[int], reason: str) -> None:
        close_old_connections()
        services.jobs_fail(job_ids=job_ids, reason=reason)

    def jobs_expired(self, reasons: dict[int, str]) -> None:
        close_old_connections()
        services.jobs_expire(reasons=reasons)
