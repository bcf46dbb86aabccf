"""JSON outputs held to their JSON Schema while they decode: lm-format-enforcer says which tokens a row may take
next, and the engine leaves only those to choose from (runtime._JsonSchemas, llama_engine's _pick).

lm-format-enforcer 0.11.3's transformers integration does not import under transformers 5 (it reads
transformers.tokenization_utils, which is gone), so this module builds the enforcer's tokenizer data itself, as
that integration does, and both engines mask the scores of a row with its own TokenEnforcer. The tokenizer data
costs a few seconds for a 49k-token vocabulary: it is built once per tokenizer, when the first row with a
schema runs, and never for batches without one. Importing this module mends one bug of the library's in place
(_counted_white_space).

An output is held to its schema token by token, not checked: one cut by its token limit (or a stop string) is
unfinished JSON, which the caller's validation marks invalid.
"""

from __future__ import annotations

import json
import logging
import threading
import weakref
from collections.abc import Collection, Sequence

import numpy as np
import torch
from lmformatenforcer import JsonSchemaParser, TokenEnforcer, TokenEnforcerTokenizerData
from lmformatenforcer.characterlevelparser import CharacterLevelParser, ForceStopParser
from lmformatenforcer.consts import WHITESPACE_CHARACTERS
from lmformatenforcer.jsonschemaparser import NumberParsingState, PrimitiveParsingState, StringParsingState
from lmformatenforcer.tokenlist import TokenList

from inference.decoding import Decoding

log = logging.getLogger(__name__)

_vocabularies: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_vocabularies_lock = threading.Lock()


def vocabulary_of(tokenizer, stop_ids: Collection[int]) -> TokenEnforcerTokenizerData:
    """What the enforcer knows of a tokenizer (each token's text, a prefix tree of them), built once per
    tokenizer object, i.e. once per loaded model; stop_ids are the end-of-text tokens a finished JSON ends with."""
    with _vocabularies_lock:  # one build, even when two threads ask first at once
        vocabulary = _vocabularies.get(tokenizer)
        if vocabulary is None:
            vocabulary = _vocabularies[tokenizer] = _build_vocabulary(tokenizer, stop_ids)
        return vocabulary


def _build_vocabulary(tokenizer, stop_ids: Collection[int]) -> TokenEnforcerTokenizerData:
    """As lmformatenforcer.integrations.transformers.build_token_enforcer_tokenizer_data does: every regular
    token's text, and whether it starts a word (decoded after "0", it gains the space it begins with)."""
    zero = tokenizer.encode("0", add_special_tokens=False)[-1]
    special = set(tokenizer.all_special_ids) | set(stop_ids)
    regular = []
    for token in range(len(tokenizer)):
        if token in special:
            continue
        after_zero = tokenizer.decode([zero, token])[1:]
        regular.append((token, after_zero, len(after_zero) > len(tokenizer.decode([token]))))

    def decode(tokens: list[int]) -> str:
        return tokenizer.decode(tokens).rstrip("\ufffd")  # a character whose bytes are not all there yet waits

    vocabulary = TokenEnforcerTokenizerData(regular, decode, sorted(stop_ids), False, len(tokenizer))
    # The library's alphabet (what a JSON string may hold) is the characters that are tokens of their own: a
    # character a byte-level tokenizer writes in several tokens ("游" is three) was not in it, and on reaching
    # the parser it closed the whole JSON at once ({"line":"游 and the end). Every character of the Basic
    # Multilingual Plane is in it now; the tokens inside a string are still found through the library's
    # shortcut list, never by walking this alphabet.
    own = set(vocabulary.tokenizer_alphabet)
    vocabulary.tokenizer_alphabet += "".join(char for char in STRING_CHARACTERS if char not in own)
    return vocabulary


STRING_CHARACTERS = "".join(chr(code) for code in range(0xA0, 0x10000) if not 0xD800 <= code < 0xE000)


def schema_problem(schema_text: str) -> str | None:
    """Why an output cannot be held to this schema (None: it can): not JSON, or not a schema lm-format-enforcer
    reads. A row whose schema has a problem ends at once, with an empty output."""
    try:
        JsonSchemaParser(json.loads(schema_text))
    except Exception as error:  # json's, pydantic's or the enforcer's own: each says what is wrong
        return f"{type(error).__name__}: {error}"
    return None


class _JsonEnforcer(TokenEnforcer):
    """lm-format-enforcer's TokenEnforcer with two ends the library leaves open, where a model caught in a loop
    would spend all its tokens:
    - once the JSON is whole, only the end-of-text tokens remain (the library still allows white space after
      the last brace), so the row ends;
    - a number ends after MAX_NUMBER_CHARACTERS (the library lets its digits run on forever)."""

    def _compute_allowed_tokens(self, state_tokens: tuple, state: TokenEnforcer.OutputTensorState) -> None:
        parser = state.parser
        if parser.can_end() and not set(parser.get_allowed_characters()) - set(WHITESPACE_CHARACTERS):
            state.allowed_tokens = TokenList(False, self.vocab_size)
            state.allowed_tokens.extend(self.eos_token_id)
            return
        super()._compute_allowed_tokens(state_tokens, state)
        if _long_number(parser):
            texts = self.tokenizer_tree.tokens_to_strs
            ending = TokenList(False, self.vocab_size)  # a new list: the library may share the one it made
            ending.extend(token for token in state.allowed_tokens.allowed_tokens
                          if token not in texts or texts[token][:1] not in NUMBER_CHARACTERS)  # fmt: skip
            state.allowed_tokens = ending


# Enough for any float64 written in full (-1.2345678901234567e-308 is 24 characters) and any int64.
MAX_NUMBER_CHARACTERS = 24
NUMBER_CHARACTERS = "0123456789.eE+-"


def _long_number(parser: CharacterLevelParser) -> bool:
    """Whether the parser is inside a number that has reached MAX_NUMBER_CHARACTERS."""
    stack = getattr(parser, "object_stack", None)
    top = stack[-1] if stack else None
    return isinstance(top, NumberParsingState) and len(top.parsed_string.strip()) >= MAX_NUMBER_CHARACTERS


class JsonRows:
    """The rows of one batch that carry a JSON Schema, each with its own enforcer (its own parser state); the
    other rows are not here, and stay free."""

    def __init__(self, decodings: Sequence[Decoding], vocabulary: TokenEnforcerTokenizerData):
        self.enforcers = {row: _JsonEnforcer(vocabulary, _parser(d.json_schema))
                          for row, d in enumerate(decodings) if d.json_schema}  # fmt: skip

    @property
    def rows(self) -> list[int]:
        return list(self.enforcers)

    def allowed(self, row: int, made: Sequence[int]) -> list[int]:
        """The tokens this row may take next, after the tokens it made (its output so far, no prompt)."""
        allowed = self.enforcers[row].get_allowed_tokens(list(made)).allowed_tokens
        return allowed or self.enforcers[row].eos_token_id  # nothing fits: the row ends

    def constrain(self, row: int, made: Sequence[int], scores: torch.Tensor) -> None:
        """Leave only the allowed tokens in this row's scores (in place: -inf for the others). Where only the
        end-of-text tokens are allowed and all are -inf already (a minimum length holds them back), they tie at 0:
        the row ends rather than take a token its schema forbids."""
        allowed = self.allowed(row, made)
        # Inside a JSON string most of the vocabulary is allowed: numpy makes such a list indices several times faster.
        index = torch.from_numpy(np.fromiter(allowed, dtype=np.int64, count=len(allowed))).to(scores.device)
        kept = scores[index]
        if len(allowed) <= len(self.enforcers[row].eos_token_id) and not torch.isfinite(kept).any():
            kept = torch.zeros_like(kept)
        scores.fill_(float("-inf"))
        scores[index] = kept


def json_rows(decodings: Sequence[Decoding], tokenizer, stop_ids: Collection[int]) -> JsonRows | None:
    """The batch's rows with a schema, or None when it has none: such a batch never touches the enforcer."""
    if not any(d.json_schema for d in decodings):
        return None
    return JsonRows(decodings, vocabulary_of(tokenizer, stop_ids))


def _counted_white_space(add_character):
    """StringParsingState.add_character, counting the white space a quoted string begins with. lm-format-enforcer
    0.11.3 skips white space wherever a string has no characters yet, meant for the space before its opening
    quote, and so also drops the first spaces inside the quotes from the string's length: " ny ny ny" passed
    as 8 characters for a maxLength of 8 (and a pattern never saw them)."""

    def add_character_counted(self: StringParsingState, new_character: str):
        inside = self.require_opening_quote and self.seen_opening_quote and not self.seen_closing_quote
        if new_character in WHITESPACE_CHARACTERS and inside and not self.parsed_string:
            new = PrimitiveParsingState.add_character(self, new_character)
            if new.regex_parser:
                new.regex_parser = new.regex_parser.add_character(new_character)
            return new
        return add_character(self, new_character)

    add_character_counted.counts_white_space = True
    return add_character_counted


if not getattr(StringParsingState.add_character, "counts_white_space", False):
    StringParsingState.add_character = _counted_white_space(StringParsingState.add_character)


def _parser(schema_text: str) -> CharacterLevelParser:
    try:
        return JsonSchemaParser(json.loads(schema_text))
    except Exception:  # a schema the enforcer cannot read: the row ends at once (schema_problem says why)
        log.warning("JSON output not generated: %s", schema_problem(schema_text))
        return ForceStopParser()
