"""The entry of a job whose template declares outputs: its runs admitted (all or none) and its outputs stored.

jobs' entry calls it through its outputs_accept hook (edgeportal.jobs.hooks), as outputs sits above jobs.
"""

from __future__ import annotations

from dataclasses import replace

import redis
from django.db import transaction

from edgeportal.core.queueing import get_queue
from edgeportal.jobs.entry import QueueUnavailable, Ticket, admit, release_places
from edgeportal.jobs.models import Job
from edgeportal.jobs.services import job_queue_new
from edgeportal.outputs.prompting import run_prompt
from edgeportal.outputs.services import outputs_create, run_fields
from edgeportal.prompts.output_spec import OutputSpec
from edgeportal.prompts.tokens import count_tokens
from inference.settings import SchedulerSettings


def outputs_accept(fields: dict, specs: list[OutputSpec], ticket: Ticket, scheduler: SchedulerSettings) -> Job:
    """A job whose template declares outputs: each output made from the request is a run of its own, admitted
    like any job (all or none: a refused one gives back the places the others held); outputs made from another
    output start once that one is final. Runs skip the prompt cache and single flight: an answer that comes
    without the model would be checked here, on the web side, where the language detector must not load."""
    parent = Job(**{**fields, "has_outputs": True})  # unsaved: what its runs copy
    planned, held = [], []
    try:
        for spec in specs:
            if not spec.from_request:
                continue
            prompt = run_prompt(spec, request=fields["prompt"])
            tokens = count_tokens(prompt, model=ticket.model) or len(prompt) // 4 + 1
            limit = spec.max_new_tokens or parent.max_new_tokens
            run = run_fields(parent=parent, spec=spec, prompt=prompt, prompt_tokens=tokens,
                             lane=scheduler.lane_for(tokens, limit), pool="")  # fmt: skip
            pool, place = admit(replace(ticket, lane=run["lane"], prompt_tokens=tokens, max_new_tokens=limit),
                                 scheduler)  # fmt: skip
            held.append((get_queue(pool), run["lane"], place))
            planned.append((spec, {**run, "pool": pool.name}, place))
        with transaction.atomic():
            parent.pool = planned[0][1]["pool"] if planned else ""
            parent.save()
            outputs = {output.name: output for output in outputs_create(job=parent, specs=specs)}
            for spec, run, place in planned:
                job = Job.objects.create(**run)
                transaction.on_commit(lambda job=job, place=place: job_queue_new(job, scheduler, place=place))
                output = outputs[spec.name]
                output.run, output.attempts, output.status = job, 1, output.Status.RUNNING
                output.save(update_fields=["run", "attempts", "status"])
    except redis.RedisError:
        release_places(held)
        raise QueueUnavailable() from None
    except BaseException:  # refused, or the database failed: no place stays held for a job that is not stored
        release_places(held)
        raise
    return parent
