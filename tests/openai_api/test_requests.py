"""OpenAI request bodies, checked without a server: what is honoured, what is refused by name."""

import pytest

from edgeportal.openai_api.requests import ApiError, parse_request
from inference.decoding import Decoding

USER = [{"role": "user", "content": "Describe the dent."}]


def refused(body, chat=True) -> ApiError:
    with pytest.raises(ApiError) as raised:
        parse_request(body, chat=chat)
    assert raised.value.status == 400
    return raised.value


def test_a_chat_request_gives_its_user_message_system_prompt_limit_and_decoding():
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "developer", "content": [{"type": "text", "text": "Answer in English."}]},
        {"role": "user", "content": "Describe the dent."},
    ]
    request = parse_request(
        {"model": "m", "messages": messages, "max_completion_tokens": 7, "temperature": 0.5, "top_p": 0.9, "seed": 3,
         "stop": "END", "stream": True, "stream_options": {"include_usage": True}, "user": "line-3", "n": 1},
        chat=True,
    )  # fmt: skip
    assert (request.prompt, request.system_prompt) == ("Describe the dent.", "Be brief.\n\nAnswer in English.")
    assert request.max_new_tokens == 7 and request.stream and request.include_usage
    assert request.decoding == Decoding(temperature=0.5, top_p=0.9, seed=3, stop=("END",), stream=True)


def test_absent_or_zero_temperature_is_greedy_and_top_p_alone_samples():
    assert not parse_request({"messages": USER}, chat=True).decoding.sampled
    assert not parse_request({"messages": USER, "temperature": 0, "top_p": 1}, chat=True).decoding.sampled
    assert parse_request({"messages": USER, "top_p": 0.5}, chat=True).decoding == Decoding(temperature=1.0, top_p=0.5)


def test_a_tiny_temperature_or_a_zero_top_p_is_greedy():
    assert parse_request({"messages": USER, "temperature": 1e-300}, chat=True).decoding == Decoding()
    assert parse_request({"messages": USER, "temperature": 0.7, "top_p": 0}, chat=True).decoding == Decoding()


def test_a_completion_from_a_template_keeps_the_chat_form():
    assert not parse_request({"template": "defect"}, chat=False).decoding.raw


def test_a_completion_reads_its_prompt_raw():
    request = parse_request({"prompt": ["Line A"], "max_tokens": 3, "echo": False}, chat=False)
    assert request.prompt == "Line A" and request.decoding.raw and request.max_new_tokens == 3


def test_extensions_come_from_the_top_level_or_extra_body():
    request = parse_request({"messages": USER, "priority": "high", "extra_body": {"deadline_ms": 900}}, chat=True)
    assert request.extensions == {"priority": "high", "deadline_ms": 900}
    template = parse_request({"template": "defect", "variables": {"camera": "C3"}}, chat=True)
    assert template.prompt is None and template.extensions["template"] == "defect"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": USER, "frequency_penalty": 0.5}, "frequency_penalty"),
        ({"messages": USER, "presence_penalty": 1}, "presence_penalty"),
        ({"messages": USER, "n": 2}, "n"),
        ({"messages": USER, "logprobs": True}, "logprobs"),
        ({"messages": USER, "logit_bias": {"42": 5}}, "logit_bias"),
        ({"messages": USER, "tools": [{"type": "function"}]}, "tools"),
        ({"messages": USER, "response_format": {"type": "json_object"}}, "response_format"),
        ({"messages": USER, "temperature": 3}, "temperature"),
        ({"messages": USER, "top_p": "high"}, "top_p"),
        ({"messages": USER, "seed": -1}, "seed"),
        ({"messages": USER, "stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"messages": USER, "stop": [""]}, "stop"),
        ({"messages": USER, "max_tokens": 0}, "max_tokens"),
        ({"messages": USER, "max_tokens": 5, "max_completion_tokens": 5}, "max_completion_tokens"),
        ({"messages": USER, "stream_options": {"include_usage": True}}, "stream_options"),
        ({"messages": USER, "stream": "yes"}, "stream"),
        ({"messages": []}, "messages"),
        ({"messages": [*USER, {"role": "assistant", "content": "hi"}]}, "messages"),
        ({"messages": [{"role": "tool", "content": "42", "tool_call_id": "c1"}, *USER]}, "messages[0].role"),
        (
            {"messages": [{"role": "assistant", "content": None, "tool_calls": [{"id": "c1"}]}, *USER]},
            "messages[0].role",
        ),
        ({"messages": [{"role": "robot", "content": "hi"}, *USER]}, "messages[0].role"),
        ({"messages": [*USER, {"role": "system", "content": "x"}]}, "messages[1]"),
        ({"messages": [{"role": "assistant", "content": 5}, *USER]}, "messages[0].content"),
        ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]}, "messages[0].content"),
        ({"messages": USER, "template": "defect"}, "messages"),
        ({"messages": USER, "extra_body": "x"}, "extra_body"),
        ({"messages": [{"role": "user", "content": "hi", "name": "line-3"}]}, "messages[0]"),
    ],
)
def test_what_would_change_the_output_and_is_not_supported_is_refused_by_name(body, param):
    assert refused(body).param == param


def test_a_conversation_gives_its_earlier_messages_in_order_and_the_last_user_message_as_the_prompt():
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Which press stopped?"},
        {"role": "assistant", "content": "Press P3.", "refusal": None},
        {"role": "user", "content": [{"type": "text", "text": "Why did it stop?"}]},
    ]
    request = parse_request({"messages": messages}, chat=True)
    assert (request.prompt, request.system_prompt) == ("Why did it stop?", "Be brief.")
    assert request.turns == (("user", "Which press stopped?"), ("assistant", "Press P3."))
    assert parse_request({"messages": USER}, chat=True).turns == ()


def test_a_conversation_is_bounded_in_messages():
    many = [{"role": "user", "content": "again"}] * 65
    assert refused({"messages": [*many, *USER]}).param == "messages"
    assert len(parse_request({"messages": [*many[:64], *USER]}, chat=True).turns) == 64


def test_a_completion_refuses_chat_fields_and_several_prompts():
    assert refused({"prompt": "a", "messages": USER}, chat=False).param == "messages"
    assert refused({"prompt": ["a", "b"]}, chat=False).param == "prompt"
    assert refused({"prompt": "a", "suffix": "b"}, chat=False).code == "unsupported_parameter"
    assert refused({"prompt": "a", "best_of": 3}, chat=False).param == "best_of"


def test_null_is_as_if_absent():
    request = parse_request({"messages": USER, "temperature": None, "stop": None, "n": None}, chat=True)
    assert request.decoding == Decoding()
