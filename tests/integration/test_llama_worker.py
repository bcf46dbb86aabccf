"""A real worker process on the llama.cpp engine (the tiny model's float32 GGUF): jobs run in shared batches,
stream through the OpenAI-compatible API, and the worker says which engine it runs."""

import openai
import pytest
from django.conf import settings

from edgeportal.core.queueing import get_queue
from edgeportal.jobs.models import Job
from inference.llama_engine import available
from tests.integration.workers import wait_until

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(available() is not None, reason=f"llama.cpp engine: {available()}"),
]


def test_a_llama_cpp_worker_batches_streams_and_says_its_engine(start_worker, start_web, api, source_token):
    worker = start_worker(EDGE_ENGINE="llama.cpp", EDGE_WINDOW_MS="1000")  # the three share a window
    ids = [api.post({"prompt": f"Describe dent {i} on plate P3."}).json()["id"] for i in range(3)]
    wait_until(lambda: all(Job.objects.get(pk=i).is_finished for i in ids), timeout=60, what="three jobs")
    jobs = [Job.objects.get(pk=i) for i in ids]
    assert {job.status for job in jobs} == {Job.Status.DONE} and len({job.batch_id for job in jobs}) == 1
    assert all(job.output_tokens == job.max_new_tokens for job in jobs)  # random weights: never an end token
    status = get_queue().redis.hgetall(next(get_queue().redis.scan_iter(
        f"{settings.EDGE_REDIS_PREFIX}:pool:*:workers:{worker.name}")))  # fmt: skip
    assert status["engine"] == "llama.cpp"

    client = openai.OpenAI(base_url=f"{start_web().url}/v1", api_key=source_token, max_retries=0, timeout=60)
    chunks = list(client.chat.completions.create(
        model=client.models.list().data[0].id, messages=[{"role": "user", "content": "Write a notice."}],
        max_tokens=12, stream=True, temperature=1.0, seed=11,
    ))  # fmt: skip
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    job = Job.objects.get(pk=int(chunks[0].id.removeprefix("chatcmpl-")))
    assert len(pieces) > 1 and "".join(pieces) == job.output and job.output_tokens == 12
