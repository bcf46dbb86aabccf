"""The OpenAI-compatible API driven by the official openai package, against the production web server and a
real worker (the tiny model), as a user's tools would talk to the node."""

import json
import shutil
import subprocess
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest

from edgeportal.jobs.models import Job
from edgeportal.sources.models import Source
from tests.integration.workers import wait_until

pytestmark = pytest.mark.integration
SAMPLED = {"temperature": 1.0, "seed": 11}  # the tiny model's greedy answer is only newlines


@pytest.fixture
def node(start_worker, start_web, source_token):
    """A worker and the web server, and a client with the camera's token."""
    worker = start_worker()
    web = start_web()
    client = openai.OpenAI(base_url=f"{web.url}/v1", api_key=source_token, max_retries=0, timeout=60)
    return client, web, worker


def model_name(client) -> str:
    [model] = client.models.list().data
    return model.id


def test_models_lists_what_the_live_worker_serves_with_context_length_and_dtype(node, tiny_model_path):
    client, _, _ = node
    [model] = client.models.list().data
    assert model.id == tiny_model_path.name and model.owned_by == "edgeportal"
    assert model.model_extra["context_length"] == 4096 and model.model_extra["dtype"] == "float32"


def test_a_chat_completion_answers_with_usage_and_its_job_latency_record(node):
    client, _, _ = node
    answer = client.chat.completions.create(
        model=model_name(client),
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Describe the dent."}],
        max_tokens=6,
        **SAMPLED,
    )
    [choice] = answer.choices
    assert choice.message.role == "assistant" and choice.finish_reason == "length"
    assert answer.usage.completion_tokens == 6 and answer.usage.total_tokens == answer.usage.prompt_tokens + 6
    job = Job.objects.get(pk=answer.model_extra["edgeportal"]["job_id"])
    assert answer.id == f"chatcmpl-{job.pk}" and job.status == Job.Status.DONE
    assert choice.message.content == job.output != ""
    assert job.system_prompt == "Be brief." and job.decoding["seed"] == 11
    record = answer.model_extra["edgeportal"]
    assert record["batch_size"] == 1 and 0 < record["time_to_first_token_ms"] <= record["total_ms"]
    assert record["queue_wait_ms"] is not None and record["inference_ms"] > 0


def test_a_conversation_is_answered_with_its_earlier_messages_read_by_the_model(node):
    client, _, _ = node
    last = {"role": "user", "content": "Why did it stop?"}
    earlier = [{"role": "user", "content": "Which press stopped?"}, {"role": "assistant", "content": "Press P3."}]
    alone = client.chat.completions.create(model=model_name(client), messages=[last], max_tokens=3, **SAMPLED)
    answer = client.chat.completions.create(
        model=model_name(client), messages=[*earlier, last], max_tokens=3, **SAMPLED
    )
    job = Job.objects.get(pk=answer.model_extra["edgeportal"]["job_id"])
    assert job.status == Job.Status.DONE and job.prompt == "Why did it stop?"
    assert job.decoding["turns"] == [["user", "Which press stopped?"], ["assistant", "Press P3."]]
    # The worker counts what the model read: the conversation's messages in the chat template, not the last alone.
    assert answer.usage.prompt_tokens > alone.usage.prompt_tokens + 8
    assert answer.choices[0].message.content == job.output


def test_a_text_completion_reads_the_prompt_without_the_chat_template(node):
    client, _, _ = node
    answer = client.completions.create(model=model_name(client), prompt="Line A restarts", max_tokens=4, **SAMPLED)
    job = Job.objects.get(pk=answer.model_extra["edgeportal"]["job_id"])
    assert answer.object == "text_completion" and answer.choices[0].text == job.output
    assert job.decoding["raw"] is True and answer.usage.prompt_tokens == job.prompt_tokens < 10


def test_a_stream_sends_the_text_as_it_is_made_then_the_usage(node):
    client, _, _ = node
    stream = client.chat.completions.create(
        model=model_name(client),
        messages=[{"role": "user", "content": "Write a notice: line A restarts."}],
        max_tokens=12,
        stream=True,
        stream_options={"include_usage": True},
        **SAMPLED,
    )
    chunks = list(stream)
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(pieces) > 1  # several pieces: the text came step by step, not at the end
    assert chunks[0].choices[0].delta.role == "assistant"
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish == ["length"]
    usage = chunks[-1]
    assert usage.choices == [] and usage.usage.completion_tokens == 12
    job = Job.objects.get(pk=usage.model_extra["edgeportal"]["job_id"])
    assert "".join(pieces) == job.output


def test_a_stop_string_is_cut_on_the_server_and_ends_the_stream_with_stop(node):
    client, _, _ = node
    messages = [{"role": "user", "content": "Write a notice: line A restarts."}]
    full = client.chat.completions.create(model=model_name(client), messages=messages, max_tokens=12, **SAMPLED)
    stop = full.choices[0].message.content.split()[2]
    stream = client.chat.completions.create(
        model=model_name(client), messages=messages, max_tokens=12, stop=[stop], stream=True, **SAMPLED
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert stop not in text and full.choices[0].message.content.startswith(text)
    assert [c.choices[0].finish_reason for c in chunks if c.choices[0].finish_reason] == ["stop"]


def test_a_bad_token_is_an_authentication_error(node):
    _, web, _ = node
    client = openai.OpenAI(base_url=f"{web.url}/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as raised:
        client.models.list()
    assert raised.value.code == "invalid_api_key"


def test_a_parameter_that_would_change_the_output_is_refused_by_name(node):
    client, _, _ = node
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(
            model=model_name(client), messages=[{"role": "user", "content": "hi"}], frequency_penalty=0.5
        )
    assert raised.value.param == "frequency_penalty" and raised.value.code == "unsupported_value"
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model=model_name(client), messages=[{"role": "user", "content": "hi"}], n=2)
    assert raised.value.param == "n"


def test_a_refusal_surfaces_as_the_client_rate_limit_error_with_retry_after(node, source_token):
    client, _, _ = node
    Source.objects.update(rate_limit_per_minute=1)
    messages = [{"role": "user", "content": "Describe the dent."}]
    client.chat.completions.create(model=model_name(client), messages=messages, max_tokens=2)
    with pytest.raises(openai.RateLimitError) as raised:
        client.chat.completions.create(model=model_name(client), messages=messages, max_tokens=2)
    assert raised.value.code == "rate_limited" and int(raised.value.response.headers["Retry-After"]) >= 1


def test_priority_and_deadline_ride_in_extra_body(node):
    client, _, _ = node
    answer = client.chat.completions.create(
        model=model_name(client),
        messages=[{"role": "user", "content": "Describe the dent."}],
        max_tokens=3,
        extra_body={"priority": "high", "deadline_ms": 20000},
    )
    job = Job.objects.get(pk=answer.model_extra["edgeportal"]["job_id"])
    assert job.priority == "high" and answer.model_extra["edgeportal"]["priority"] == "high"
    assert 19 <= (job.deadline_at - job.created_at).total_seconds() <= 20


def test_raw_server_sent_events_as_curl_reads_them(node, source_token):
    client, web, _ = node
    body = {"model": model_name(client), "prompt": "Line A", "max_tokens": 5, "stream": True, **SAMPLED}
    request = urllib.request.Request(
        f"{web.url}/v1/completions", data=json.dumps(body).encode(), method="POST",
        headers={"Authorization": f"Bearer {source_token}", "Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=60) as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        events = [line for line in response.read().decode().split("\n\n") if line.startswith("data: ")]
    assert events[-1] == "data: [DONE]"
    chunks = [json.loads(event.removeprefix("data: ")) for event in events[:-1]]
    assert all(chunk["object"] == "text_completion" for chunk in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    wait_until(lambda: Job.objects.filter(status=Job.Status.DONE).exists(), what="the job stored")


def test_curl_reads_the_raw_stream(node, source_token):
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    client, web, _ = node
    body = json.dumps({"model": model_name(client), "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4,
                       "stream": True, **SAMPLED})  # fmt: skip
    out = subprocess.run(
        ["curl", "-sN", f"{web.url}/v1/chat/completions", "-H", f"Authorization: Bearer {source_token}",
         "-H", "Content-Type: application/json", "-d", body],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    events = [line for line in out.split("\n\n") if line.strip()]
    assert events[-1] == "data: [DONE]" and all(event.startswith("data: ") for event in events)
    assert json.loads(events[0].removeprefix("data: "))["object"] == "chat.completion.chunk"


def test_a_client_that_hangs_up_mid_stream_stops_no_one_else(node):
    """Two streams share a batch; one client disconnects after its first piece. The other reads to the end,
    and the job of the one that left still finishes (its output stored)."""
    client, _, _ = node
    messages = [{"role": "user", "content": "Write a notice: line A restarts."}]
    options = {"model": model_name(client), "messages": messages, "max_tokens": 24, "stream": True, **SAMPLED}

    def leave():
        stream = client.chat.completions.create(**options)
        first = next(iter(stream))
        stream.close()  # hangs up
        return first

    with ThreadPoolExecutor(2) as pool:
        leaving = pool.submit(leave)
        staying = pool.submit(lambda: list(client.chat.completions.create(**options)))
        first = leaving.result(timeout=60)
        chunks = staying.result(timeout=60)
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["length"]
    job_id = int(first.id.removeprefix("chatcmpl-"))
    wait_until(lambda: Job.objects.get(pk=job_id).is_finished, what="the left job to finish")
    assert Job.objects.get(pk=job_id).status == Job.Status.DONE and Job.objects.get(pk=job_id).output_tokens == 24
