"""The database and queue reads and writes behind the OpenAI-compatible views (synchronous: the views call
them through sync_to_async)."""

from __future__ import annotations

from edgeportal.core.queueing import get_queue, pools_known
from edgeportal.jobs.entry import JobRejected, job_submit
from edgeportal.jobs.models import Job
from edgeportal.openai_api.requests import CompletionRequest
from edgeportal.openai_api.responses import api_error
from edgeportal.sources.models import Source
from inference.store.queue import WORKER_ALIVE_S

# job_submit's field names as this API calls them.
PARAMS = {"max_new_tokens": "max_tokens", "system_prompt": "messages", "turns": "messages"}


def submit(completion: CompletionRequest, source: Source) -> Job:
    """The request through the same entry as /api/jobs: rate limit, guard, cache, admission."""
    extensions = completion.extensions
    try:
        return job_submit(
            prompt=completion.prompt,
            template_slug=extensions.get("template"),
            variables=extensions.get("variables"),
            priority=extensions.get("priority"),
            deadline_ms=extensions.get("deadline_ms"),
            model=completion.model,
            system_prompt=completion.system_prompt,
            max_new_tokens=completion.max_new_tokens,
            decoding=completion.decoding,
            turns=completion.turns,
            source=source,
            allow_free_prompt=source.allow_free_prompts,
        )
    except JobRejected as rejected:
        param = rejected.field
        if param == "prompt" and completion.chat:
            param = "messages"
        if rejected.code == "unknown_model" and param == "model":  # OpenAI's answer to a model it lacks
            raise api_error(404, f"{rejected.message} GET /v1/models lists them.", code="model_not_found",
                            param="model") from None  # fmt: skip
        raise api_error(rejected.status, rejected.message, code=rejected.code, param=PARAMS.get(param, param),
                        retry_after=rejected.retry_after) from None  # fmt: skip


def finished_job(job: Job) -> Job:
    """The job as stored now, with its latency record (one query) and its outputs, read here: the async views
    build the answer outside the database thread."""
    return Job.objects.select_related("latency").prefetch_related("outputs").get(pk=job.pk)


def served_models() -> list[dict]:
    """The models the live workers serve (OpenAI's model objects), with their context length and dtype."""
    served: dict[str, dict] = {}
    for pool in pools_known():
        queue = get_queue(pool)
        now = queue.now()
        for worker in queue.workers():
            if "model" not in worker or now - float(worker["heartbeat_at"]) > WORKER_ALIVE_S:
                continue
            entry = served.setdefault(worker["model"], {
                "id": worker["model"], "object": "model", "created": int(float(worker.get("started_at") or 0)),
                "owned_by": "edgeportal", "context_length": _int(worker.get("context_length")), "dtypes": [],
                "devices": [], "engines": [], "workers": 0,
            })  # fmt: skip
            entry["workers"] += 1
            pairs = (
                ("dtypes", worker.get("dtype")),
                ("devices", worker.get("device")),
                ("engines", worker.get("engine")),
            )
            for key, value in pairs:
                if value and value not in entry[key]:
                    entry[key].append(value)
    for entry in served.values():
        entry["dtype"] = entry["dtypes"][0] if len(entry["dtypes"]) == 1 else ",".join(entry["dtypes"])
    return sorted(served.values(), key=lambda entry: entry["id"])


def _int(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None
