"""Finished outputs kept in Redis beside their lease until the database has stored them.

A batch's outputs exist once the model ran it; storing them can still fail (the database is locked or
down) or the worker can die before it stores them. So each job's hash keeps its output and what its
batch record needs, under the field `kept`, from inference until the job is acknowledged. A retry, or
another worker after a crash, stores them from there: the model never runs again only to store a result.
"""

from __future__ import annotations

import json
from dataclasses import asdict

from inference.batch import BatchRun, JobResult
from inference.settings import SchedulerSettings
from inference.store.queue import QueuedJob


def kept_fields(batch: BatchRun) -> dict[int, str]:
    """Job id -> the value of its `kept` field: its batch's record and its own output or failure."""
    record = {
        "batch_id": batch.batch_id,
        "worker": batch.worker,
        "lane": batch.lane,
        "settings": asdict(batch.settings),
        "window_ms": batch.window_ms,
        "window_opened_at": batch.window_opened_at,
        "inference_started_at": batch.inference_started_at,
        "inference_ended_at": batch.inference_ended_at,
        "first_token_at": batch.first_token_at,
        "paused_ms": batch.paused_ms,
        "padded_tokens": batch.padded_tokens,
        "picked": {str(job.job_id): job.picked_at for job in batch.jobs},
        "copies": {str(job_id): run for job_id, run in batch.copies.items()},  # identical jobs answered by one run
    }
    kept = {}
    for result in batch.results:
        output = {"text": result.text, "prompt_tokens": result.prompt_tokens, "new_tokens": result.new_tokens}
        output["finish_reason"] = result.finish_reason
        if result.choice is not None:
            output["choice"] = result.choice
        if result.cached is not None:
            output["cached"] = result.cached
        kept[result.job_id] = json.dumps({**record, "output": output})
    for job_id, reason in batch.failures.items():
        kept[job_id] = json.dumps({**record, "failure": reason})
    return kept


def batches_from_kept(jobs: list[QueuedJob]) -> list[BatchRun]:
    """The batch runs these jobs' kept outputs came from, as the sink stores a finished batch."""
    batches: dict[str, BatchRun] = {}
    for job in jobs:
        kept = json.loads(job.kept)
        batch = batches.get(kept["batch_id"])
        if batch is None:
            picked = {int(job_id): at for job_id, at in kept["picked"].items()}
            batch = batches[kept["batch_id"]] = BatchRun(
                batch_id=kept["batch_id"],
                worker=kept["worker"],
                # The batch as it ran: its size and each job's window entry go into the records.
                jobs=[QueuedJob(job_id, "", 0, picked_at=at) for job_id, at in picked.items()],
                settings=SchedulerSettings(**kept["settings"]),
                lane=kept["lane"],
                window_ms=kept["window_ms"],
                window_opened_at=kept["window_opened_at"],
                inference_started_at=kept["inference_started_at"],
                inference_ended_at=kept["inference_ended_at"],
                first_token_at=kept.get("first_token_at"),
                paused_ms=kept["paused_ms"],
                padded_tokens=kept["padded_tokens"],
                copies={int(job_id): run for job_id, run in kept.get("copies", {}).items()},
            )
        if "output" in kept:
            output = kept["output"]
            picked_at = kept["picked"][str(job.job_id)]
            result = JobResult(
                job.job_id, output["text"], output["prompt_tokens"], output["new_tokens"], picked_at,
                finish_reason=output.get("finish_reason", "stop"), choice=output.get("choice"),
                cached=output.get("cached"),
            )  # fmt: skip
            batch.results.append(result)
        else:
            batch.failures[job.job_id] = kept["failure"]
    return list(batches.values())
