"""Writes on outputs: a job's outputs planned at entry, each one's run started, checked when it ends (a
language mismatch retried once), outputs made from it started, and the job finished once every output is
final. Called inside the transaction that stores the runs (edgeportal.jobs.services.jobs_ended, through
edgeportal.jobs.hooks)."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from datetime import timedelta

import redis
from django.conf import settings
from django.db import DatabaseError, transaction
from django.utils import timezone

from edgeportal.core import metrics
from edgeportal.core.queueing import scheduler_settings
from edgeportal.jobs.models import Job
from edgeportal.jobs.services import job_queue_new, jobs_ended, latency_for
from edgeportal.outputs.checks import Checked, output_check
from edgeportal.outputs.models import JobOutput
from edgeportal.outputs.prompting import run_prompt
from edgeportal.prompts.output_spec import OutputSpec, stored_spec
from edgeportal.prompts.tokens import count_tokens
from inference.decoding import Decoding

log = logging.getLogger(__name__)
ATTEMPTS = 2  # a run, and once more with a stronger instruction when its language was wrong


def spec_of(output: JobOutput) -> OutputSpec:
    """The declaration the output was made with (checked when its template was saved)."""
    return stored_spec(output.spec, default_language=output.language or "en")


def run_decoding(spec: OutputSpec, decoding: Decoding) -> Decoding:
    """A JSON output's run is constrained to its schema (the runtime's json_schema), as one candidate: its schema
    bounds it; a text output's candidates are judged in its own language."""
    if spec.format != "json":
        return replace(decoding, language=spec.language) if decoding.candidates > 1 else decoding
    schema = json.dumps(spec.schema, separators=(",", ":"), sort_keys=True)
    return replace(decoding, json_schema=schema, candidates=1, language="")


def outputs_create(*, job: Job, specs: list[OutputSpec]) -> list[JobOutput]:
    """A job's outputs, all pending, in their declared order."""
    return JobOutput.objects.bulk_create(
        JobOutput(job=job, name=spec.name, position=position, spec=spec.as_dict(), language=spec.language,
                  format=spec.format)
        for position, spec in enumerate(specs)
    )  # fmt: skip


def run_fields(*, parent: Job, spec: OutputSpec, prompt: str, prompt_tokens: int, lane: str, pool: str) -> dict:
    """The fields of a run: the parent's sender, template, model, priority and deadline; its own prompt."""
    # A run streams to nobody: a page watches its job, and the job's text is its first output once final.
    decoding = run_decoding(spec, replace(Decoding.from_dict(parent.decoding), stream=False))
    return {
        "parent": parent, "source_id": parent.source_id, "submitted_by_id": parent.submitted_by_id,
        "template_id": parent.template_id, "template_version": parent.template_version, "variables": parent.variables,
        "prompt": prompt, "system_prompt": parent.system_prompt,
        "max_new_tokens": spec.max_new_tokens or parent.max_new_tokens, "priority": parent.priority, "lane": lane,
        "model": parent.model, "pool": pool, "deadline_at": parent.deadline_at, "prompt_tokens": prompt_tokens,
        "decoding": decoding.as_dict() if decoding != Decoding() else {},
    }  # fmt: skip


def _run_start(output: JobOutput, spec: OutputSpec, *, prompt: str, pool: str) -> Job | None:
    """Queue a run of this output (once committed), outside admission: the job was admitted as a whole.
    A run that could only expire (the job's deadline passed) is not queued: the output expires."""
    parent = output.job
    if parent.deadline_at is not None and parent.deadline_at <= timezone.now():
        output.status, output.error = JobOutput.Status.EXPIRED, "expired: the job's deadline passed before it ran"
        return None
    try:
        scheduler = scheduler_settings()
    except redis.RedisError:  # stored anyway; the sweep queues it once Redis is back, as any job
        scheduler = settings.EDGE_SCHEDULER
    tokens = count_tokens(prompt, model=parent.model)
    tokens = tokens if tokens is not None else len(prompt) // 4 + 1
    run = Job.objects.create(**run_fields(parent=parent, spec=spec, prompt=prompt, prompt_tokens=tokens,
                                          lane=scheduler.lane_for(tokens, spec.max_new_tokens or parent.max_new_tokens),
                                          pool=pool))  # fmt: skip
    output.run, output.attempts, output.status = run, output.attempts + 1, JobOutput.Status.RUNNING
    transaction.on_commit(lambda: job_queue_new(run, scheduler))
    return run


def _finish(output: JobOutput, run: Job, checked: Checked | None) -> None:
    Status = JobOutput.Status
    now = timezone.now()
    output.finished_at = now
    output.output_tokens = run.output_tokens
    output.latency_ms = (now - output.job.created_at).total_seconds() * 1000
    if run.status != Job.Status.DONE and output.text:  # a retry that never ran: the first text stands
        output.status, output.error = Status.LANGUAGE_MISMATCH, f"its retry ended {run.status}: {run.error}"[:500]
        return
    if run.status != Job.Status.DONE:
        output.status = Status.EXPIRED if run.status == Job.Status.EXPIRED else Status.FAILED
        output.error = run.error
        return
    output.text = run.output
    output.language_detected = checked.language_detected
    output.valid, output.data, output.error = checked.valid, checked.data, checked.error
    if checked.valid is False:
        output.status = Status.INVALID
    elif not checked.language_ok:
        output.status = Status.LANGUAGE_MISMATCH
    else:
        output.status = Status.DONE


def outputs_advance(*, runs: list[Job]) -> None:
    """Runs ended (done, failed or expired, now stored in this transaction): check and finish their outputs,
    retry a wrong language once, start the outputs made from them, and finish the jobs whose outputs are all
    final."""
    by_run = {run.pk: run for run in runs if run.parent_id}
    if not by_run:
        return
    outputs = list(
        JobOutput.objects.select_for_update()
        .select_related("job")
        .filter(run_id__in=list(by_run), status=JobOutput.Status.RUNNING)
    )
    finished = []
    for output in outputs:
        run_id = output.run_id
        try:
            with transaction.atomic():  # a savepoint: one output that cannot be checked never stops the batch
                if _advance(output, by_run[output.run_id]):
                    finished.append(output)
        except DatabaseError:
            raise  # the sink waits the database out and stores the whole batch again
        except Exception as error:
            log.exception("output %s of job %s could not be checked", output.name, output.job_id)
            output.run_id = run_id  # a retry made in the savepoint is gone with it
            output.status, output.error = JobOutput.Status.FAILED, f"could not be checked: {error}"[:500]
            output.finished_at = timezone.now()
            output.save()
            finished.append(output)
    _after_finished(finished)


def _advance(output: JobOutput, run: Job) -> bool:
    """Check one output's ended run; returns whether the output is final (else a retry runs)."""
    spec = spec_of(output)
    checked = output_check(spec, run.output) if run.status == Job.Status.DONE else None
    wrong_language = checked is not None and not checked.language_ok and checked.valid is not False
    if wrong_language and output.attempts < ATTEMPTS:
        # Kept while the retry runs: if it fails or expires, this text still stands, in its language.
        output.text, output.language_detected = run.output, checked.language_detected
        output.valid, output.data = checked.valid, checked.data
        if _run_start(output, spec, prompt=_retry_prompt(output, spec), pool=run.pool) is not None:
            output.save()
            return False
        # Too late for a retry: this text stands, in its language.
    _finish(output, run, checked)
    output.save()
    return True


def _retry_prompt(output: JobOutput, spec: OutputSpec) -> str:
    """The first run's prompt made again with the stronger instruction (the same request or input text)."""
    job = output.job
    if spec.from_request:
        return run_prompt(spec, request=job.prompt, strong=True)
    source = job.outputs.get(name=spec.source)
    return run_prompt(spec, request=job.prompt, input_text=source.text, strong=True)


def _after_finished(finished: list[JobOutput]) -> None:
    """Outputs made from the finished ones start (or fail, when their input has no text); deliveries are
    made; jobs whose outputs are now all final finish."""
    done_now = list(finished)
    queue = list(finished)
    while queue:
        source = queue.pop()
        for output in source.job.outputs.select_for_update().filter(status=JobOutput.Status.PENDING):
            spec = spec_of(output)
            if spec.source != source.name:
                continue
            output.job = source.job
            if source.text and source.status != JobOutput.Status.INVALID:
                prompt = run_prompt(spec, request=source.job.prompt, input_text=source.text)
                _run_start(output, spec, prompt=prompt, pool=source.run.pool if source.run else source.job.pool)
            else:  # its input ended without a usable text: it ends the same way (expired stays expired)
                expired = source.status == JobOutput.Status.EXPIRED
                output.status = JobOutput.Status.EXPIRED if expired else JobOutput.Status.FAILED
                output.error = f"its input {source.name!r} ended {source.status} without a usable text"
            if output.status != JobOutput.Status.RUNNING:  # failed, or expired before it could start
                output.finished_at = timezone.now()
                done_now.append(output)
                queue.append(output)
            output.save()
    if not done_now:
        return
    metrics.outputs_finished(done_now)
    for output in done_now:
        if output.deliverable:
            _deliver(output)
    for job in {output.job_id: output.job for output in done_now}.values():
        job_finish_if_final(job=job)


def _deliver(output: JobOutput) -> None:
    from edgeportal.delivery.services import deliveries_create  # the delivery app reads outputs' models

    try:
        with transaction.atomic():  # a savepoint: a delivery that cannot be planned never loses the batch
            deliveries_create(output=output)
    except DatabaseError:
        raise  # stored again with the batch: a delivery is never silently lost
    except Exception:
        log.exception("could not plan the deliveries of output %s of job %s", output.name, output.job_id)


def job_finish_if_final(*, job: Job) -> bool:
    """Finish a job whose outputs are all final: failed if one failed, expired if one expired, else done;
    its output is its first output's text. Returns whether it finished now."""
    job = Job.objects.select_for_update().get(pk=job.pk)
    outputs = list(job.outputs.all())
    if job.is_finished or not outputs or any(not output.is_final for output in outputs):
        return False
    Status = JobOutput.Status
    statuses = {output.status for output in outputs}
    ended = next((output for output in outputs if output.status in (Status.FAILED, Status.EXPIRED)), None)
    if Status.FAILED in statuses:
        job.status = Job.Status.FAILED
    elif Status.EXPIRED in statuses:
        job.status = Job.Status.EXPIRED
    else:
        job.status = Job.Status.DONE
    job.error = f"output {ended.name!r}: {ended.error}" if ended is not None else ""
    job.output = outputs[0].text
    job.output_tokens = sum(output.output_tokens or 0 for output in outputs)
    job.finished_at = timezone.now()
    job.save(update_fields=["status", "error", "output", "output_tokens", "finished_at"])
    record = _request_latency(latency_for(job), job, outputs)
    record.save()
    metrics.jobs_finished([record])
    jobs_ended([job])
    return True


def _request_latency(record, job: Job, outputs: list[JobOutput]):
    """The request's latency record, end to end: from its arrival until its last output was final. Its stages
    are its runs': the wait until the first one was read into a window and that window's wait, the model time of
    the batches that ran them (each batch once), their tokens. It ran in several batches: no batch size."""
    runs = list(Job.objects.filter(pk__in=[o.run_id for o in outputs if o.run_id]).select_related("batch"))
    picked = [run for run in runs if run.picked_at is not None]
    if picked:
        first = min(picked, key=lambda run: run.picked_at)
        record.queue_wait_ms = (first.picked_at - job.created_at).total_seconds() * 1000
        if first.inference_started_at is not None:
            record.window_wait_ms = (first.inference_started_at - first.picked_at).total_seconds() * 1000
    batches = {run.batch_id: run.batch.inference_ms for run in runs if run.batch is not None}
    record.inference_ms = sum(batches.values()) if batches else None
    record.prompt_tokens = sum(run.prompt_tokens or 0 for run in runs) or None
    record.worker = ",".join(sorted({run.worker for run in runs if run.worker}))[:200]
    return record


@transaction.atomic
def jobs_with_outputs_settle(*, grace_s: float) -> int:
    """Finish the jobs with outputs whose deadline passed more than grace_s ago and that still wait: an output
    whose run ended without a word (its row deleted by hand, say) expires, so its job never waits forever."""
    overdue = Job.objects.filter(
        has_outputs=True,
        status__in=[Job.Status.QUEUED, Job.Status.RUNNING],
        deadline_at__lt=timezone.now() - timedelta(seconds=grace_s),
    )
    settled = 0
    for job in overdue.order_by("deadline_at")[:1000]:
        unfinished = [Job.Status.QUEUED, Job.Status.RUNNING]
        stuck = list(job.outputs.exclude(status__in=JobOutput.FINAL).exclude(run__status__in=unfinished))
        for output in stuck:
            output.status, output.finished_at = JobOutput.Status.EXPIRED, timezone.now()
            output.error = "expired: it never ended before its job's deadline"
        JobOutput.objects.bulk_update(stuck, ["status", "error", "finished_at"])
        metrics.outputs_finished(stuck)
        settled += job_finish_if_final(job=job)
    return settled
