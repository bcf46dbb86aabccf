"""The semantic prompt cache: a template's job whose request means what an earlier one's did takes its answer.

Off by default; a template turns it on with a threshold (PromptTemplate.semantic_cache). Two requests match when:
- they are in the same group: the same template version, settings and model (as the exact cache's key), and the
  same values of every choice and integer variable (those cannot be paraphrased, only changed);
- their free-text values carry the same codes: every id, number and stand-alone capital ("P3", "120", "A" in
  "line A"), so a near-miss (another id or number) never matches however close its words;
- the cosine of their free-text values' embeddings (the reranker's encoder, in the worker) reaches the threshold.
Entries live in Redis beside the exact cache, with its time to live (the tuning page's cache TTL); their keys
are the store's (inference.store).
"""

from __future__ import annotations

import base64
import json
import re
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
from django.conf import settings

from edgeportal.core.queueing import scheduler_settings, web_store
from edgeportal.prompts import cache
from inference.decoding import Decoding
from inference.generation import Generation

if TYPE_CHECKING:
    from inference.embedder import Embedder

# Entries kept per group, newest first: a lookup reads them all (about 1 KB each).
MAX_ENTRIES = 256

# Between a job's free-text values in Decoding.semantic_text: no value holds it (the guard refuses control
# characters), so each value is compared with the same variable's value.
VALUE_SEPARATOR = "\x1e"

# A code: a run of Latin letters and digits holding a digit ("P3", "WO-20931", "3.5", "-5" with its sign), or a
# stand-alone run of one to four capitals ("A" in "line A", "AGV"). Words that merely start with a capital
# ("Camera") are not codes; CJK characters around a code end it ("相机C3检测" holds "C3").
_LATIN = r"[0-9A-Za-z\u00C0-\u024F]"
_CODE = re.compile(
    rf"(?<!{_LATIN})(?:[-+±](?=\d))?(?:{_LATIN}*\d{_LATIN}*(?:[.,:/\-]{_LATIN}*\d{_LATIN}*)*|[A-Z]{{1,4}})(?!{_LATIN})"
)
_SENTENCE_START = re.compile(r"(?:^|[.!?:;\n])\s*$")
# Words that turn a request into another while its embedding hardly moves ("a scratch on the left side" and
# "... right side": cosine 0.997 with all-MiniLM-L6-v2; "within 30 minutes" and "30 hours": 0.991). Like codes,
# they must be the same in both requests: opposites, units and numbers written as words.
_WORDS_KEPT = frozenset(
    word.casefold()
    for word in (
        # en
        "left right upper lower top bottom front rear back inner outer inside outside open closed off start stop "
        "high low hot cold increase decrease rising falling before after above below min max minimum maximum not "
        "no never without missing wide narrow long short thick thin large small big tight loose fast slow early "
        "late full empty wet dry seconds second minutes minute hours hour days day weeks week months month zero "
        "one two three four five six seven eight nine ten eleven twelve twenty thirty forty fifty hundred thousand "
        "first second third half double "
        # es
        "izquierda derecha superior inferior delantero trasero interior exterior abierto cerrado alto bajo sin "
        "nunca ancho estrecho largo corto grueso delgado grande pequeño lleno vacío segundos minutos horas días "
        "semanas cero uno una dos tres cuatro cinco seis siete ocho nueve diez veinte cien mil primero segundo "
        # de
        "links rechts oben unten vorne hinten innen außen offen geschlossen hoch niedrig nicht kein keine ohne "
        "breit schmal lang kurz dick dünn groß klein voll leer sekunden minuten stunden tage wochen null eins zwei "
        "drei vier fünf sechs sieben acht neun zehn zwanzig hundert tausend erste zweite"
    ).split()
)
_CJK_KEPT = frozenset("左右上下前后内外开关高低无不没未宽窄长短厚薄大小满空秒分时天周月零一二两三四五六七八九十百千万")
_WORD = re.compile(r"[^\W\d_]+")


def semantic_codes(text: str) -> list[list[list[str]]]:
    """What must be equal in two requests for one to answer the other, per free-text value (VALUE_SEPARATOR):
    its ids and stand-alone capitals in order, its numbers in order (so "from C3 to C4" is not "from C4 to C3",
    nor "-5 °C" "5 °C"), and the words kept as codes (opposites, units, numbers as words: "left", "右", "nicht",
    "hours") in any order. Full-width is read as ASCII, a decimal comma as a point. A capital that starts a
    sentence ("A scratch on ...", "I see ...") is a word."""
    return [_value_codes(value) for value in text.split(VALUE_SEPARATOR)]


def _value_codes(text: str) -> list[list[str]]:
    text = unicodedata.normalize("NFKC", text).replace("\u2212", "-")  # the minus sign as a hyphen
    text = re.sub(r"(?<=\d),(?=\d)", ".", text)
    ids, numbers = [], []
    for match in _CODE.finditer(text):
        code = match.group()
        if code in ("A", "I") and _SENTENCE_START.search(text[: match.start()]):
            continue
        (numbers if not any(char.isalpha() for char in code) else ids).append(code)
    lowered = text.casefold()
    words = [word for word in _WORD.findall(lowered) if word in _WORDS_KEPT]
    words += [char for char in lowered if char in _CJK_KEPT]
    return [ids, numbers, sorted(words)]


def semantic_decoding(decoding: Decoding, *, template, values: dict, key_fields: dict) -> Decoding:
    """A template job's decoding with the semantic cache's fields, where its template turns it on and it has
    free text to compare (a template of choices and integers alone has only exact repeats: the exact cache).
    key_fields: the exact cache key's arguments (cache.cache_key) but the prompt."""
    threshold = template.semantic_cache if template is not None else None
    if not threshold or decoding.sampled or not settings.EDGE_CACHE_ENABLED:
        return decoding
    spec = template.variable_spec()
    free = [str(values.get(v.name) or "") for v in spec if v.type == "text"]  # each in its place, empty ones too
    if not any(free):
        return decoding
    fixed = {v.name: values.get(v.name) for v in spec if v.type != "text"}
    group = cache.cache_key(
        prompt="semantic:" + json.dumps(fixed, sort_keys=True, ensure_ascii=False),
        # not the copy bias's items: they are the request's own ids and numbers, which the codes compare
        decoding=replace(decoding.without_cache_fields(), copy_items=()).to_json(),
        **key_fields,
    )
    return replace(
        decoding, semantic_threshold=threshold, semantic_group=group, semantic_text=VALUE_SEPARATOR.join(free)
    )


@dataclass(frozen=True)
class Entry:
    """One answer kept: the request's free text, its codes and embedding, and what the model answered."""

    text: str
    codes: list[list[list[str]]]
    vector: np.ndarray
    output: str
    prompt_tokens: int
    output_tokens: int
    finish_reason: str
    stored_at: float

    def dumps(self) -> str:
        fields = {**self.__dict__, "vector": base64.b64encode(self.vector.astype(np.float16).tobytes()).decode()}
        return json.dumps(fields, ensure_ascii=False)

    @classmethod
    def loads(cls, raw: bytes | str) -> Entry:
        fields = json.loads(raw)
        vector = np.frombuffer(base64.b64decode(fields.pop("vector")), dtype=np.float16).astype(np.float32)
        return cls(vector=vector, **fields)


def best_match(vector: np.ndarray, codes: list, entries: list[Entry], threshold: float) -> tuple[Entry, float]:
    """The closest entry with the same codes, and its cosine; (None, best cosine seen) when none reaches the
    threshold. Vectors are of unit length, so a dot product is their cosine."""
    best, best_similarity = None, -1.0
    for entry in entries:
        if entry.codes != codes or entry.vector.shape != vector.shape:
            continue
        similarity = float(entry.vector @ vector)
        if similarity > best_similarity:
            best, best_similarity = entry, similarity
    # float16 storage rounds a cosine of 1 to about 0.9995: an exact repeat still matches a threshold of 0.999.
    return (best if best is not None and best_similarity >= threshold - 1e-3 else None), best_similarity


def entries_of(group: str, ttl_s: int) -> list[Entry]:
    """A group's entries that are younger than the cache's time to live (it may have been shortened since)."""
    oldest = time.time() - ttl_s
    entries = [Entry.loads(raw) for raw in web_store().semantic_entries(group, MAX_ENTRIES)]
    return [entry for entry in entries if entry.stored_at >= oldest]


@dataclass(frozen=True)
class Pending:
    """A missed row, to store its answer under: its group, text, codes and embedding."""

    group: str
    text: str
    codes: list[list[list[str]]]
    vector: np.ndarray


def embedded_text(semantic_text: str) -> str:
    """What the encoder reads: the free-text values, one per line."""
    return semantic_text.replace(VALUE_SEPARATOR, "\n")


def semantic_lookup(embedder: Callable[[], Embedder]):
    """The worker's lookup (inference.semantic_cache.Lookup): one embedding call for the batch's asking rows,
    one Redis read per group. A request the encoder cannot read whole (longer than its window, or words it does
    not know: Chinese for the default English encoder) is neither looked up nor kept: a difference the encoder
    never sees must not make two requests one."""

    def lookup(decodings: list[Decoding]) -> list[tuple[Generation | None, Pending | None]]:
        ttl_s = scheduler_settings().cache_ttl_s
        encoder = embedder() if ttl_s else None
        found: list[tuple[Generation | None, Pending | None]] = [(None, None)] * len(decodings)
        readable = [
            row for row, d in enumerate(decodings) if ttl_s and encoder.reads_whole(embedded_text(d.semantic_text))
        ]
        if not readable:  # the cache is off (tuning page), or nothing to compare
            return found
        vectors = encoder.embed([embedded_text(decodings[row].semantic_text) for row in readable]).numpy()
        groups = {group: entries_of(group, ttl_s) for group in {decodings[row].semantic_group for row in readable}}
        for row, vector in zip(readable, vectors, strict=True):
            decoding = decodings[row]
            codes = semantic_codes(decoding.semantic_text)
            entry, similarity = best_match(vector, codes, groups[decoding.semantic_group], decoding.semantic_threshold)
            if entry is None:
                found[row] = (None, Pending(decoding.semantic_group, decoding.semantic_text, codes, vector))
                continue
            # Its own prompt's tokens are counted by the engine (WithSemanticCache): not the earlier request's.
            hit = Generation(entry.output, 0, entry.output_tokens, entry.finish_reason,
                             cached={"similarity": round(similarity, 4)})  # fmt: skip
            found[row] = (hit, None)
        return found

    return lookup


def semantic_store(pending: Pending, generation: Generation) -> None:
    """Keep a new answer for later requests of its group (inference.semantic_cache.Store). An empty answer is
    not worth keeping."""
    ttl_s = scheduler_settings().cache_ttl_s
    if not ttl_s or not generation.text.strip():
        return
    entry = Entry(pending.text, pending.codes, pending.vector, generation.text, generation.prompt_tokens,
                  generation.new_tokens, generation.finish_reason, time.time())  # fmt: skip
    web_store().semantic_entry_add(pending.group, entry.dumps(), keep=MAX_ENTRIES, ttl_s=ttl_s)
