"""Single flight inside a batch: identical prompts run once, and every job of the group gets that run's result.

Jobs are identical when their cache keys are (the prompt, the system prompt, max new tokens, the model and
the template version: see edgeportal.prompts.cache.cache_key); a job without one (the cache is off) runs alone.
"""

from __future__ import annotations

from inference.generation import BatchOutput
from inference.store.queue import QueuedJob


def distinct_runs(jobs: list[QueuedJob]) -> tuple[list[QueuedJob], dict[int, int]]:
    """The jobs the model must run (the first of each group of identical ones, in batch order), and for
    each other job of a group, the id of the job whose run answers it."""
    first: dict[str, QueuedJob] = {}
    runs: list[QueuedJob] = []
    copies: dict[int, int] = {}
    for job in jobs:
        leader = first.get(job.cache_key) if job.cache_key else None
        if leader is None:
            runs.append(job)
            if job.cache_key:
                first[job.cache_key] = job
        else:
            copies[job.job_id] = leader.job_id
    return runs, copies


def outputs_for_each(
    jobs: list[QueuedJob], runs: list[QueuedJob], outputs: list[BatchOutput | str], copies: dict[int, int]
) -> list[BatchOutput | str]:
    """Each job's output, in the order of jobs: its own run's, or the run it shares (its text, or its failure).
    A shared output adds no padded tokens: the model processed the prompt once."""
    by_run = {job.job_id: output for job, output in zip(runs, outputs, strict=True)}
    each: list[BatchOutput | str] = []
    for job in jobs:
        if job.job_id not in copies:
            each.append(by_run[job.job_id])
            continue
        shared = by_run[copies[job.job_id]]
        each.append(shared if isinstance(shared, str) else BatchOutput(shared.generations, 0, shared.inference_ms))
    return each
