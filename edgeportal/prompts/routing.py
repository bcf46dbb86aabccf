"""Template routing: the templates closest to a free prompt, by character n-grams (any script, no model)."""

from __future__ import annotations

import functools
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from edgeportal.prompts.rendering import VARIABLE

# The web process loads no model (the embedding model lives in the worker), so closeness is lexical. Character
# n-grams need no word splitting, so a Chinese prompt matches a template with Chinese text as an English one
# does, and they match shared stems across languages ("inspección", "inspection"); never across scripts.
NGRAM_SIZES = (2, 3, 4)
MIN_PROMPT_CHARS = 8  # letters and digits: fewer say too little to route on
MIN_SCORE = 0.2  # cosine below this is chance overlap (see `make bench-routing`)
RUNNER_UP_SHARE = 0.75  # a second template is suggested only when it fits about as well as the best
WORD = re.compile(r"[^\W_]+")


@dataclass(frozen=True)
class Suggestion:
    template: object  # a PromptTemplate, or anything with its fields (bench/routing.py passes unsaved ones)
    score: float  # cosine of the TF-IDF weighted n-grams, 0 to 1


def fold(text: str) -> str:
    """Lowercase, NFKC (full-width to ASCII), accents dropped ("cámara" and "camara" are one word)."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c))


def ngram_counts(text: str) -> Counter:
    """The 2- to 4-character n-grams of each word of the folded text, a word padded with a space each side
    (a run of Chinese characters is one word)."""
    counts: Counter = Counter()
    for word in WORD.findall(fold(text)):
        padded = f" {word} "
        for size in NGRAM_SIZES:
            counts.update(padded[i : i + size] for i in range(len(padded) - size + 1))
    return counts


def _humanised(name: str) -> str:
    return name.replace("_", " ")


def routing_text(template) -> str:
    """What a template is about, as a manager would word it: its title, description and body (placeholders
    out), its variables as the form labels them with their help, examples and choices, and its outputs'
    instructions. Not the system prompt: it says how to answer, not what is asked."""
    parts = [template.title, template.description, VARIABLE.sub(" ", template.body)]
    declared = {}
    for variable in template.variables or ():
        if isinstance(variable, dict) and isinstance(variable.get("name"), str):
            declared[variable["name"]] = variable
    for name in dict.fromkeys([*declared, *(m.group(1).strip() for m in VARIABLE.finditer(template.body))]):
        variable = declared.get(name, {})
        parts.append(str(variable.get("label") or _humanised(name)))
        parts += [str(variable.get(key) or "") for key in ("help", "example")]
        parts += [str(choice) for choice in variable.get("choices") or ()]
    parts += [str(output.get("instruction") or "") for output in template.outputs or () if isinstance(output, dict)]
    return "\n".join(part for part in parts if part)


def _weighted(counts: Counter, idf: dict[str, float], unseen_idf: float) -> dict[str, float]:
    """Sublinear term frequency times IDF, scaled to length 1."""
    vector = {gram: (1 + math.log(count)) * idf.get(gram, unseen_idf) for gram, count in counts.items()}
    norm = math.sqrt(sum(weight * weight for weight in vector.values())) or 1.0
    return {gram: weight / norm for gram, weight in vector.items()}


@functools.lru_cache(maxsize=16)
def _index(texts: tuple[str, ...]) -> tuple[dict[str, float], float, list[dict[str, float]]]:
    """IDF over this set of templates (n-grams every template has weigh least), and each one's vector.
    Keyed by the texts: an edit makes a new key, a deleted template drops out of the set."""
    counts = [ngram_counts(text) for text in texts]  # computed once per set and edit: templates change rarely
    frequency = Counter(gram for template_counts in counts for gram in template_counts)
    total = len(texts)
    idf = {gram: math.log((1 + total) / (1 + df)) + 1 for gram, df in frequency.items()}
    # The prompt's n-grams that no template has still count in its length: an off-topic prompt that shares a
    # few common words with a template stays far from it.
    unseen_idf = math.log(1 + total) + 1
    return idf, unseen_idf, [_weighted(template_counts, idf, unseen_idf) for template_counts in counts]


def is_routable(prompt: str) -> bool:
    """Enough letters and digits to say what the prompt is about."""
    return sum(len(word) for word in WORD.findall(fold(prompt))) >= MIN_PROMPT_CHARS


def template_suggestions(
    prompt: str, templates: Iterable, *, limit: int = 2, min_score: float = MIN_SCORE
) -> list[Suggestion]:
    """The templates closest to the prompt, best first: at most `limit`, each scoring at least `min_score` and
    at least RUNNER_UP_SHARE of the best. Nothing for a prompt too short to route on. Only the templates given
    are candidates (the caller decides which the user may use)."""
    templates = list(templates)
    if not templates or not is_routable(prompt):
        return []
    idf, unseen_idf, vectors = _index(tuple(routing_text(template) for template in templates))
    query = _weighted(ngram_counts(prompt), idf, unseen_idf)
    scored = [
        Suggestion(template=template, score=sum(weight * vector.get(gram, 0.0) for gram, weight in query.items()))
        for template, vector in zip(templates, vectors, strict=True)
    ]
    scored.sort(key=lambda suggestion: suggestion.score, reverse=True)
    floor = max(min_score, scored[0].score * RUNNER_UP_SHARE)
    return [suggestion for suggestion in scored[:limit] if suggestion.score >= floor]
