"""An OpenAI request body, checked and turned into what job_submit takes. Pure: no database, no Redis.

Every parameter that changes the output is either honoured or refused with a 400 that names it; one whose
neutral value (n=1, presence_penalty=0, logprobs=false...) changes nothing is accepted at that value only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from inference.decoding import Decoding

MAX_STOP = 4  # as OpenAI's API
MAX_STOP_CHARS = 100
EXTENSIONS = ("priority", "deadline_ms", "template", "variables")
# Accepted, changing nothing: who asks, OpenAI's own bookkeeping.
IGNORED = ("user", "metadata", "store", "service_tier", "stream_options", "extra_body")
# Accepted at their neutral value only.
NEUTRAL = {
    "n": (1,),
    "presence_penalty": (0, 0.0),
    "frequency_penalty": (0, 0.0),
    "logprobs": (False,),
    "logit_bias": ({},),
    "echo": (False,),
    "best_of": (1,),
    "parallel_tool_calls": (True, False),
    "response_format": ({"type": "text"},),
}
COMMON = ("model", "stream", "max_tokens", "temperature", "top_p", "seed", "stop", *EXTENSIONS, *IGNORED, *NEUTRAL)
CHAT_FIELDS = frozenset((*COMMON, "messages", "max_completion_tokens"))
COMPLETION_FIELDS = frozenset((*COMMON, "prompt"))


class ApiError(Exception):
    """An error in OpenAI's shape: {"error": {"message", "type", "param", "code"}}."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None,
                 kind: str = "invalid_request_error", retry_after: int | None = None):  # fmt: skip
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.kind = status, message, param, code, kind
        self.retry_after = retry_after


def invalid(message: str, param: str | None, code: str = "invalid_value") -> ApiError:
    return ApiError(400, message, param=param, code=code)


@dataclass(frozen=True)
class CompletionRequest:
    """What one request asks of the node."""

    chat: bool  # /v1/chat/completions (else /v1/completions)
    model: str | None
    prompt: str | None
    system_prompt: str | None
    max_new_tokens: int | None
    decoding: Decoding
    stream: bool = False
    include_usage: bool = False
    extensions: dict = field(default_factory=dict)  # priority, deadline_ms, template, variables
    turns: tuple[tuple[str, str], ...] = ()  # a conversation's messages before the last (user, assistant)


def parse_request(body: object, *, chat: bool) -> CompletionRequest:
    if not isinstance(body, dict):
        raise invalid("The body must be a JSON object.", None, "invalid_json")
    extra = body.get("extra_body")
    if extra is not None and not isinstance(extra, dict):
        raise invalid("extra_body must be an object.", "extra_body")
    # A client that sends extra_body as a field (rather than merging it, as the openai package does).
    body = {**body, **(extra or {})}
    body = {key: value for key, value in body.items() if value is not None}  # null: as if absent
    allowed = CHAT_FIELDS if chat else COMPLETION_FIELDS
    for name in sorted(body):
        if name not in allowed:
            raise invalid(f"Unsupported parameter: {name!r}. This node does not support it.", name,
                          "unsupported_parameter")  # fmt: skip
        if name in NEUTRAL and not _neutral(body[name], NEUTRAL[name]):
            raise invalid(f"Unsupported value of {name!r}: only {NEUTRAL[name][0]!r} is supported.", name,
                          "unsupported_value")  # fmt: skip
    stream = _bool(body, "stream")
    options = body.get("stream_options") or {}
    if not isinstance(options, dict) or set(options) - {"include_usage", "include_obfuscation"}:
        raise invalid("stream_options may only hold include_usage.", "stream_options")
    if options and not stream:
        raise invalid("stream_options is only allowed with stream: true.", "stream_options")
    template = body.get("template")
    prompt, system, turns = _chat_prompt(body, template) if chat else _completion_prompt(body, template)
    return CompletionRequest(
        chat=chat,
        model=_text(body, "model"),
        prompt=prompt,
        system_prompt=system,
        max_new_tokens=_max_tokens(body, chat),
        # A template is written for the chat form, whichever endpoint sends it.
        decoding=_decoding(body, raw=not chat and template is None, stream=stream),
        stream=stream,
        include_usage=bool(options.get("include_usage")),
        extensions={name: body[name] for name in EXTENSIONS if name in body},
        turns=turns,
    )


def _neutral(value: object, allowed: tuple) -> bool:
    return any(value == choice and type(value) is type(choice) for choice in allowed) or (
        isinstance(value, int | float) and not isinstance(value, bool) and any(
            isinstance(c, int | float) and not isinstance(c, bool) and value == c for c in allowed)
    )  # fmt: skip


def _bool(body: dict, name: str) -> bool:
    value = body.get(name, False)
    if not isinstance(value, bool):
        raise invalid(f"{name} must be true or false.", name)
    return value


def _text(body: dict, name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise invalid(f"{name} must be a string.", name)
    return value


def _number(body: dict, name: str, low: float, high: float) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise invalid(f"{name} must be a number.", name)
    if not low <= value <= high:
        raise invalid(f"{name} must be between {low:g} and {high:g}.", name)
    return float(value)


def _max_tokens(body: dict, chat: bool) -> int | None:
    names = [name for name in ("max_completion_tokens", "max_tokens") if name in body]
    if len(names) > 1:
        raise invalid("Send max_tokens or max_completion_tokens, not both.", names[0])
    if not names:
        return None
    value = body[names[0]]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise invalid(f"{names[0]} must be a whole number of at least 1.", names[0])
    return value


MIN_TEMPERATURE = 0.01  # below it, sampling is greedy in all but name (and logits overflow): greedy


def _decoding(body: dict, *, raw: bool, stream: bool) -> Decoding:
    """temperature or top_p 0, or both absent: greedy. A top_p below 1 alone samples at temperature 1
    (OpenAI's default)."""
    temperature = _number(body, "temperature", 0, 2)
    top_p = _number(body, "top_p", 0, 1)
    if temperature is None and top_p is not None and 0 < top_p < 1:
        temperature = 1.0
    if top_p == 0 or (temperature or 0) < MIN_TEMPERATURE:
        temperature, top_p = 0.0, None
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63):
        raise invalid("seed must be a whole number from 0 to 2^63-1.", "seed")
    return Decoding(
        temperature=temperature or 0.0,
        top_p=top_p if top_p else 1.0,
        seed=seed,
        stop=_stop(body.get("stop")),
        raw=raw,
        stream=stream,
    )


def _stop(value: object) -> tuple[str, ...]:
    stops = [value] if isinstance(value, str) else value
    if stops is None:
        return ()
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise invalid("stop must be a string or a list of strings.", "stop")
    if len(stops) > MAX_STOP:
        raise invalid(f"stop may hold at most {MAX_STOP} strings.", "stop")
    if any(not s or len(s) > MAX_STOP_CHARS for s in stops):
        raise invalid(f"Each stop string must have 1 to {MAX_STOP_CHARS} characters.", "stop")
    return tuple(dict.fromkeys(stops))


MAX_TURNS = 64  # earlier messages of a conversation; their text is bounded with the prompt's (job_submit)


def _chat_prompt(body: dict, template: object) -> tuple[str | None, str | None, tuple[tuple[str, str], ...]]:
    """The last user message, the system prompt (system and developer messages, joined) and the conversation's
    earlier user and assistant messages, in order."""
    messages = body.get("messages")
    if template is not None:
        if messages:
            raise invalid("Send messages or a template, not both.", "messages")
        return None, None, ()
    if not isinstance(messages, list) or not messages:
        raise invalid("messages must be a non-empty list of messages.", "messages", "missing")
    systems, turns = [], []
    for index, message in enumerate(messages):
        param = f"messages[{index}]"
        if not isinstance(message, dict):
            raise invalid("Each message must be an object with a role and a content.", param)
        role = message.get("role")
        if role in ("tool", "function") or (role == "assistant" and message.get("tool_calls")):
            raise invalid("Tools are not supported: this node has no tools to call.", f"{param}.role",
                          "unsupported_value")  # fmt: skip
        if role not in ("system", "developer", "user", "assistant"):
            raise invalid("role must be system, developer, user or assistant.", f"{param}.role")
        extra = set(message) - {"role", "content", "tool_calls", "refusal"}
        if extra:
            raise invalid(f"Unsupported message field: {sorted(extra)[0]!r}.", param, "unsupported_parameter")
        text = _content(message.get("content"), f"{param}.content")
        if role in ("system", "developer"):
            if turns:  # laid out first by every chat template: anywhere else would be moved in silence
                raise invalid("System and developer messages must come before the conversation.", param)
            systems.append(text)
        else:
            turns.append((role, text))
    if not turns or turns[-1][0] != "user":
        raise invalid("The last message (after any system messages) must be a user message.", "messages")
    if len(turns) - 1 > MAX_TURNS:
        raise invalid(f"A conversation may hold at most {MAX_TURNS} messages before the last.", "messages")
    return turns[-1][1], "\n\n".join(systems) if systems else None, tuple(turns[:-1])


def _content(content: object, param: str) -> str:
    """A message's text: a string, or a list of text parts (images and audio are not read by this node)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and content:
        texts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise invalid("Only text content parts are supported.", param, "unsupported_value")
            texts.append(part["text"])
        return "\n".join(texts)
    raise invalid("content must be a string or a list of text parts.", param)


def _completion_prompt(body: dict, template: object) -> tuple[str | None, None, tuple]:
    prompt = body.get("prompt")
    if template is not None:
        if prompt is not None:
            raise invalid("Send a prompt or a template, not both.", "prompt")
        return None, None, ()
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise invalid("prompt must be a string (one prompt per request).", "prompt", "missing")
    return prompt, None, ()
