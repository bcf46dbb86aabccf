"""The semantic prompt cache: a template's job whose request means what an earlier one's did takes its answer.

Off by default; a template turns it on with a threshold (PromptTemplate.semantic_cache). Two requests match when:
- they are in the same group: the same template version, settings and model (as the exact cache's key), and the
  same values of every choice and integer variable (those cannot be paraphrased, only changed);
- their free-text values carry the same codes: every id, number and stand-alone capital ("P3", "120", "A" in
  "line A"), so a near-miss (another id or number) never matches however close its words;
- the cosine of their free-text values' embeddings (the reranker's encoder, in the worker) reaches the threshold.
Entries live in Redis beside the exact cache, with its time to live (the tuning page's cache TTL).
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

from edgeportal.core.queueing import get_queue, scheduler_settings
from edgeportal.prompts import cache
from inference.decoding import Decoding
from inference.generation import Generation

if TYPE_CHECKING:
    from inference.embedder import Embedder

# Entries kept per group, newest first: a lookup reads them all (about 1 KB each).
MAX_ENTRIES = 256

# A code: a run of Latin letters and digits holding a digit ("P3", "WO-20931", "3.5"), or a stand-alone run of
# one to four capitals ("A" in "line A", "AGV"). Words that merely start with a capital ("Camera") are not codes;
# CJK characters around a code end it ("相机C3检测" holds "C3").
_LATIN = r"[0-9A-Za-z\u00C0-\u024F]"
_CODE = re.compile(rf"(?<!{_LATIN})(?:{_LATIN}*\d{_LATIN}*(?:[.,:\-]{_LATIN}*\d{_LATIN}*)*|[A-Z]{{1,4}})(?!{_LATIN})")
_SENTENCE_START = re.compile(r"(?:^|[.!?:;\n])\s*$")
# Words that turn a request into another while its embedding hardly moves ("a scratch on the left side" and
# "... right side": cosine 0.997 with all-MiniLM-L6-v2; "within 30 minutes" and "30 hours": 0.991). Like codes,
# they must be the same in both requests: opposites, and units written as words.
_POLAR_WORDS = frozenset(
    # en
    "left right upper lower top bottom front rear back inner outer inside outside open closed off start stop "
    "high low hot cold increase decrease rising falling before after above below min max minimum maximum not no "
    "never without missing wide narrow long short thick thin large small big tight loose fast slow early late "
    "full empty wet dry seconds second minutes minute hours hour days day weeks week months month "
    # es
    "izquierda derecha superior inferior delantero trasero interior exterior abierto cerrado alto bajo sin nunca "
    "ancho estrecho largo corto grueso delgado grande pequeño lleno vacío segundos minutos horas días semanas "
    # de
    "links rechts oben unten vorne hinten innen außen offen geschlossen hoch niedrig nicht kein keine ohne breit "
    "schmal lang kurz dick dünn groß klein voll leer sekunden minuten stunden tage wochen".split()
)
_POLAR_CJK = frozenset("左右上下前后内外开关高低无不没未宽窄长短厚薄大小满空秒分时天周月")
_LATIN_WORD = re.compile(r"[a-zà-ÿ]+")


def semantic_codes(text: str) -> list[str]:
    """What must be equal in two requests for one to answer the other, sorted: their codes (full-width as ASCII,
    decimal comma as point), so a near-miss (another id or number) never matches, and their polar words
    ("left", "右", "nicht"). A capital that starts a sentence ("A scratch on ...", "I see ...") is a word."""
    text = re.sub(r"(?<=\d),(?=\d)", ".", unicodedata.normalize("NFKC", text))
    codes = []
    for match in _CODE.finditer(text):
        code = match.group()
        if code in ("A", "I") and _SENTENCE_START.search(text[: match.start()]):
            continue
        codes.append(code)
    lowered = text.casefold()
    codes += [f"~{word}" for word in _LATIN_WORD.findall(lowered) if word in _POLAR_WORDS]
    codes += [f"~{char}" for char in lowered if char in _POLAR_CJK]
    return sorted(codes)


def semantic_decoding(decoding: Decoding, *, template, values: dict, key_fields: dict) -> Decoding:
    """A template job's decoding with the semantic cache's fields, where its template turns it on and it has
    free text to compare (a template of choices and integers alone has only exact repeats: the exact cache).
    key_fields: the exact cache key's arguments (cache.cache_key) but the prompt."""
    threshold = template.semantic_cache if template is not None else None
    if not threshold or decoding.sampled or not settings.EDGE_CACHE_ENABLED:
        return decoding
    spec = template.variable_spec()
    free = [str(values.get(v.name, "")) for v in spec if v.type == "text" and values.get(v.name) not in (None, "")]
    if not free:
        return decoding
    fixed = {v.name: values.get(v.name) for v in spec if v.type != "text"}
    group = cache.cache_key(
        prompt="semantic:" + json.dumps(fixed, sort_keys=True, ensure_ascii=False),
        decoding=decoding.without_cache_fields().to_json(),
        **key_fields,
    )
    return replace(decoding, semantic_threshold=threshold, semantic_group=group, semantic_text="\n".join(free))


@dataclass(frozen=True)
class Entry:
    """One answer kept: the request's free text, its codes and embedding, and what the model answered."""

    text: str
    codes: list[str]
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


def best_match(vector: np.ndarray, codes: list[str], entries: list[Entry], threshold: float) -> tuple[Entry, float]:
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


def _key(group: str) -> str:
    return f"{settings.EDGE_REDIS_PREFIX}:cache:semantic:{group}"


def entries_of(group: str, ttl_s: int) -> list[Entry]:
    """A group's entries that are younger than the cache's time to live (it may have been shortened since)."""
    oldest = time.time() - ttl_s
    entries = [Entry.loads(raw) for raw in get_queue().redis.lrange(_key(group), 0, MAX_ENTRIES - 1)]
    return [entry for entry in entries if entry.stored_at >= oldest]


@dataclass(frozen=True)
class Pending:
    """A missed row, to store its answer under: its group, text, codes and embedding."""

    group: str
    text: str
    codes: list[str]
    vector: np.ndarray


def semantic_lookup(embedder: Callable[[], Embedder]):
    """The worker's lookup (inference.semantic_cache.Lookup): one embedding call for the batch's asking rows,
    one Redis read per group."""

    def lookup(decodings: list[Decoding]) -> list[tuple[Generation | None, Pending | None]]:
        ttl_s = scheduler_settings().cache_ttl_s
        if not ttl_s:  # the cache is off (tuning page): nothing found, nothing kept
            return [(None, None)] * len(decodings)
        vectors = embedder().embed([decoding.semantic_text for decoding in decodings]).numpy()
        groups = {decoding.semantic_group: entries_of(decoding.semantic_group, ttl_s) for decoding in decodings}
        found = []
        for decoding, vector in zip(decodings, vectors, strict=True):
            codes = semantic_codes(decoding.semantic_text)
            entry, similarity = best_match(vector, codes, groups[decoding.semantic_group], decoding.semantic_threshold)
            if entry is None:
                found.append((None, Pending(decoding.semantic_group, decoding.semantic_text, codes, vector)))
                continue
            cached = {"similarity": round(similarity, 4), "request": entry.text}
            found.append((Generation(entry.output, entry.prompt_tokens, entry.output_tokens, entry.finish_reason,
                                     cached=cached), None))  # fmt: skip
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
    with get_queue().redis.pipeline() as pipe:
        pipe.lpush(_key(pending.group), entry.dumps())
        pipe.ltrim(_key(pending.group), 0, MAX_ENTRIES - 1)
        pipe.expire(_key(pending.group), ttl_s)
        pipe.execute()
