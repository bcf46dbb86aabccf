"""Writes of the latency lab: a run and its points, stored together."""

from collections.abc import Sequence

from django.db import transaction

from edgeportal.lab.models import LabPoint, LabRun
from edgeportal.lab.simulator import Comparison, WindowResult


@transaction.atomic
def labrun_record(
    *,
    model_name: str,
    dtype: str,
    parameters: dict,
    comparison: Comparison,
    results: Sequence[WindowResult],
    target_p95_ms: float | None = None,
    notes: str = "",
) -> LabRun:
    run = LabRun.objects.create(
        model_name=model_name,
        dtype=dtype,
        parameters=parameters,
        comparison=comparison.as_dict(),
        target_p95_ms=target_p95_ms,
        notes=notes,
    )
    LabPoint.objects.bulk_create(
        LabPoint(
            run=run,
            window_ms=result.window_ms,
            jobs=result.jobs,
            batches=result.batches,
            mean_batch_size=result.mean_batch_size,
            throughput=result.throughput,
            p50_ms=result.p50_ms,
            p95_ms=result.p95_ms,
            p99_ms=result.p99_ms,
            end_to_end_p95_ms=result.end_to_end_p95_ms,
            queue_wait_p50_ms=result.queue_wait_p50_ms,
            queue_wait_p95_ms=result.queue_wait_p95_ms,
            samples=[timing.as_dict() for timing in result.timings],
        )
        for result in results
    )
    return run
