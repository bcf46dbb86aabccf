"""What a receiver gets: the body (the output as JSON) and the idempotency key of an output's delivery."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime

from django.db.models import Model


def idempotency_key(*, job_id: int, job_created_at: datetime, output_name: str, destination_id: int) -> str:
    """job-<job>-<output>-dest-<destination>-<hash>: readable, and the same for every attempt and re-send.

    The hash also covers when the job was made, so a node whose database was reset (ids counting from 1
    again) never reuses a key a receiver still remembers.
    """
    origin = f"{job_id}|{job_created_at.isoformat()}|{output_name}|{destination_id}"
    digest = hashlib.sha256(origin.encode()).hexdigest()[:12]
    return f"job-{job_id}-{output_name}-dest-{destination_id}-{digest}"


def delivery_body(*, output: Model, key: str) -> str:
    """The JSON text of a JobOutput (output.job loaded, with its template and source) as receivers get it."""
    job = output.job
    return json.dumps(
        {
            "idempotency_key": key,
            "job_id": job.pk,
            "output": output.name,
            "status": output.status,
            "language": output.language,
            "language_detected": output.language_detected,
            "format": output.format,
            "valid": output.valid,
            "text": output.text,
            "data": output.data,
            "template": job.template.slug if job.template_id else None,
            "source": job.source.name if job.source_id else None,
            "created_at": _iso(job.created_at),
            "finished_at": _iso(output.finished_at),
        },
        ensure_ascii=False,  # UTF-8 (JSON's own encoding): a Chinese ticket stays readable in logs
        separators=(",", ":"),
    )


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None
