"""How one job is decoded, beside the batch it shares: sampling, stop strings, the prompt's form, streaming,
a JSON Schema its output keeps to, how its repeats are controlled.

A batch runs jobs with different decodings together: greedy rows stay greedy, sampled rows draw from their
own seeded generator (runtime._RowSampling), each row stops at its own stop strings, and a row with a JSON
Schema takes only the tokens its schema allows (inference.json_output). Kept apart from runtime.py so the web
reads it without torch.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace


@dataclass(frozen=True)
class Decoding:
    temperature: float = 0.0  # 0: greedy
    top_p: float = 1.0  # 1: the whole distribution
    seed: int | None = None  # a sampled job's draws; None: a fresh seed each run
    stop: tuple[str, ...] = ()  # the output ends before the first of these (cut on the server)
    raw: bool = False  # the prompt as sent, without the chat template (a completion, not a chat)
    # A conversation's earlier turns, ((role, text), ...) with role "user" or "assistant", laid out by the chat
    # template before the prompt (the last user message). Carried here, with the prompt's other form, so every
    # engine and the cache key see it without a new argument on every path.
    turns: tuple[tuple[str, str], ...] = ()
    stream: bool = False  # the worker publishes each step's new text (inference.token_stream)
    # The JSON Schema the output is held to while it decodes, as compact JSON text ("": free text). Held to it
    # token by token, but not checked: an output cut by its token limit is unfinished JSON, which the caller's
    # validation marks invalid.
    json_schema: str = ""
    # Repeats within the generated tokens only, never against the prompt (inference.repetition): a penalty on
    # tokens the output already has (1: none), and the n-grams it may not generate twice (0: any).
    repetition_penalty: float = 1.0
    no_repeat_ngram: int = 0
    # Candidates generated in the same batch, the best of which a reranker picks (inference.candidates): the
    # first decoded as above, the others sampled. The language its output must be in is one of its checks.
    candidates: int = 1
    language: str = ""
    # The request's ids and numbers, made more likely while the output lacks them (inference.copy_bias): the
    # logit added to the token that begins or continues one (0: off).
    copy_items: tuple[str, ...] = ()
    copy_bias: float = 0.0
    # The semantic prompt cache (inference.semantic_cache): a job may take the answer of an earlier one whose
    # request was as close as this cosine (0: off), in the same group (template version, its fixed values and
    # settings); its request's free text is what is compared.
    semantic_threshold: float = 0.0
    semantic_group: str = ""
    semantic_text: str = ""

    @property
    def sampled(self) -> bool:
        return self.temperature > 0

    def without_cache_fields(self) -> Decoding:
        """What decides the output: streamed or not, the semantic cache or not, the same text."""
        return replace(self, stream=False, semantic_threshold=0.0, semantic_group="", semantic_text="")

    def to_json(self) -> str:
        """Only what differs from greedy chat, so a plain job carries an empty string."""
        changed = {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) != f.default}
        changed = {key: _listed(value) for key, value in changed.items()}
        return json.dumps(changed, separators=(",", ":")) if changed else ""

    def as_dict(self) -> dict:
        return {key: _listed(value) for key, value in asdict(self).items()}

    @classmethod
    def from_json(cls, text: str) -> Decoding:
        return cls.from_dict(json.loads(text)) if text else cls()

    @classmethod
    def from_dict(cls, values: dict) -> Decoding:
        known = {f.name for f in fields(cls)}
        values = {key: value for key, value in values.items() if key in known}
        for key in ("stop", "copy_items"):
            if key in values:
                values[key] = tuple(values[key])
        if "turns" in values:
            values["turns"] = tuple((role, text) for role, text in values["turns"])
        return cls(**values)


def _listed(value: object) -> object:
    """Tuples as JSON lists, nested ones too (turns)."""
    return [_listed(item) for item in value] if isinstance(value, tuple) else value


GREEDY = Decoding()


# The ranges a template, a setting or a request may ask for. A 1-gram ban would forbid every word twice.
NGRAM_SIZES = (2, 16)  # or 0: off
PENALTIES = (1.0, 2.0)  # 1: off; above 2 an answer loses its common words
COPY_BIASES = (0.0, 8.0)  # 0: off; at 8 an item's token wins over almost any other
MAX_COPY_ITEMS = 16  # a request's items the bias favours (the first ones): each costs a check per step
MAX_CANDIDATES = 8  # a job of n candidates takes n rows of its batch
# A template's semantic cache threshold: below 0.8 unrelated requests of one template start to match.
SEMANTIC_THRESHOLDS = (0.8, 0.999)


def repeat_control_problem(*, repetition_penalty: float, no_repeat_ngram: int) -> tuple[str, str] | None:
    """What is wrong with a repeat control, as (field, message); None when it is fine."""
    low, high = NGRAM_SIZES
    if no_repeat_ngram != 0 and not low <= no_repeat_ngram <= high:
        return "no_repeat_ngram", f"must be 0 (off) or between {low} and {high}."
    low, high = PENALTIES
    if not low <= repetition_penalty <= high:  # NaN fails too
        return "repetition_penalty", f"must be between {low:g} (off) and {high:g}."
    return None


def final_text(raw: str, stop: tuple[str, ...] = ()) -> tuple[str, bool]:
    """A job's output from the text its tokens decode to: cut before the first stop string, without NUL (no
    database stores it; model output is untrusted text) and surrounding white space. True when a stop
    string cut it."""
    raw = raw.replace("\x00", "")
    cut = min((at for at in (raw.find(s) for s in stop if s) if at >= 0), default=-1)
    if cut >= 0:
        raw = raw[:cut]
    return raw.strip(), cut >= 0


def settled_text(raw: str, stop: tuple[str, ...] = ()) -> str:
    """The part of final_text that no later token can change, so a stream may send it now: the end that
    begins a stop string, trailing white space (stripped if the output ends there) and a
    character whose bytes are not all decoded yet (U+FFFD at the end) wait for the next token."""
    text, stopped = final_text(raw, stop)
    if stopped:
        return text
    # final_text strips: white space at the end may still be followed by more text, and then belongs in it.
    body = raw.replace("\x00", "").lstrip()
    hold = max((_begun(body, s) for s in stop if s), default=0)
    if hold:
        body = body[:-hold]
    return body.rstrip("\ufffd").rstrip()


def _begun(text: str, stop: str) -> int:
    """How many of text's last characters begin stop (at most all of it but one: a whole one would have cut)."""
    for size in range(min(len(stop) - 1, len(text)), 0, -1):
        if text.endswith(stop[:size]):
            return size
    return 0


class Detokenizer:
    """A row's text, token by token, without decoding all its tokens again at each step (a step would cost
    more the longer the output): each new token is decoded with the few before it, whose text is known,
    and a token that ends inside a character waits for the next (as vLLM and TGI stream)."""

    def __init__(self, decode):
        self.decode = decode
        self.tokens: list[int] = []
        self.text = ""  # the raw text of the tokens up to self.read
        self.prefix = 0  # tokens before this one are settled in self.text
        self.read = 0

    def push(self, token: int) -> str:
        """Add a token; returns the raw text so far (what decode(all tokens) gives, up to a half character)."""
        self.tokens.append(token)
        known = self.decode(self.tokens[self.prefix : self.read])
        current = self.decode(self.tokens[self.prefix :])
        if len(current) > len(known) and not current.endswith("\ufffd"):
            self.text += current[len(known) :]
            self.prefix, self.read = self.read, len(self.tokens)
        return self.text
