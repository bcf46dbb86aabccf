"""The reranker: each candidate answer scored part by part, and the best of them picked."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from django.conf import settings

from edgeportal.outputs.language import language_matches
from edgeportal.outputs.quality import echo_share, echoed, empty_or_truncated, looping, required_items

if TYPE_CHECKING:
    from inference.embedder import Embedder

# How the parts add up. The soft parts rank sound answers: the request's ids and numbers count twice as much as
# the similarity, as an answer without "P3" or "120 °C" is wrong however close its wording, while similarity
# between a request and its answer is only a weak sign (a list of steps reads unlike its question). A negative
# similarity counts as 0 (unrelated is unrelated), so together they give 0 to 3.
ECHO_WEIGHT = 2.0
SIMILARITY_WEIGHT = 1.0
# Each failed check (a loop, the wrong language, an empty, cut or overlong answer) costs more than the soft
# parts can give, so any candidate that fails one loses against any that fails none.
FAILED_CHECK_PENALTY = 4.0


@dataclass(frozen=True)
class CandidateScore:
    """Why a candidate won or lost ("why this answer"): each part of its score, and their total."""

    similarity: float  # cosine of the request's and the answer's embeddings, -1 to 1
    echo_share: float  # share of the request's ids and numbers the answer carries (1.0 when there are none)
    missing_items: tuple[str, ...]  # those it does not carry
    language_ok: bool | None  # None: no language was asked for
    detected_language: str | None
    loop_free: bool
    length_problem: str | None  # "empty", "truncated" or "too long"; None when the length is in range
    total: float

    def as_dict(self) -> dict:
        """The score as plain JSON values, to store with the job."""
        return {**asdict(self), "missing_items": list(self.missing_items)}


def candidate_scores(
    request: str,
    candidates: list[str],
    *,
    language: str | None,
    finish_reasons: list[str],
    embedder: Embedder,
    max_chars: int | None = None,
) -> list[CandidateScore]:
    """Each candidate's score against the request, in the candidates' order. One embedding call for all of them:
    the request and the answers go through the encoder as one batch."""
    if len(finish_reasons) != len(candidates):
        raise ValueError(f"{len(candidates)} candidates but {len(finish_reasons)} finish reasons")
    vectors = embedder.embed([request, *candidates])
    similarities = (vectors[1:] @ vectors[0]).tolist()
    items = required_items(request)
    return [
        score_candidate(
            answer,
            similarity=similarity,
            items=items,
            language=language,
            finish_reason=finish_reason,
            max_chars=max_chars,
        )
        for answer, similarity, finish_reason in zip(candidates, similarities, finish_reasons, strict=True)
    ]


def score_candidate(
    answer: str,
    *,
    similarity: float,
    items: list[str],
    language: str | None,
    finish_reason: str,
    max_chars: int | None = None,
) -> CandidateScore:
    """One candidate's score, its similarity to the request already measured."""
    # Rounded so that equal answers tie exactly (rows of one batch may differ in their last bits) and the
    # stored record reads cleanly.
    similarity = round(similarity, 4)
    missing = tuple(item for item in items if not echoed(item, answer))
    share = round(echo_share(items, answer), 4)
    language_ok, detected = language_matches(answer, language) if language else (None, None)
    length_problem = empty_or_truncated(answer, finish_reason)
    if length_problem is None and max_chars is not None and len(answer) > max_chars:
        length_problem = "too long"
    loop_free = not looping(answer)
    failed = (language_ok is False) + (not loop_free) + (length_problem is not None)
    total = ECHO_WEIGHT * share + SIMILARITY_WEIGHT * max(similarity, 0.0) - FAILED_CHECK_PENALTY * failed
    return CandidateScore(
        similarity=similarity,
        echo_share=share,
        missing_items=missing,
        language_ok=language_ok,
        detected_language=detected,
        loop_free=loop_free,
        length_problem=length_problem,
        total=round(total, 4),
    )


def best_candidate(scores: list[CandidateScore]) -> int:
    """The index of the highest total; on a tie the first, which is the greedy candidate where there is one."""
    return max(range(len(scores)), key=lambda index: scores[index].total)


def reranker_pick(embedder: Callable[[], Embedder]):
    """The worker's pick among a job's candidates (inference.candidates.Pick): scored against the job's prompt,
    in its language; returns the best one's index and every candidate's scores and text ("why this answer")."""

    def pick(prompt: str, system_prompt: str | None, candidates: list, decoding) -> tuple[int, dict]:
        texts = [candidate.text for candidate in candidates]
        scores = candidate_scores(
            prompt, texts, language=decoding.language or None, embedder=embedder(),
            finish_reasons=[candidate.finish_reason for candidate in candidates],
        )  # fmt: skip
        described = [
            {"text": candidate.text, "new_tokens": candidate.new_tokens, **score.as_dict()}
            for candidate, score in zip(candidates, scores, strict=True)
        ]
        return best_candidate(scores), {"candidates": described}

    return pick


_embedder: Embedder | None = None
_embedder_lock = threading.Lock()
_failed: tuple[float, Exception] | None = None
RETRY_LOAD_AFTER_S = 60.0  # a model that failed to load is not tried again for every job in between


def reranker_embedder() -> Embedder:
    """The reranker's embedding model (EDGE_RERANKER_MODEL, else all-MiniLM-L6-v2), loaded once per worker
    process, by whichever thread asks first."""
    global _embedder, _failed
    with _embedder_lock:
        if _embedder is None:
            if _failed is not None and time.monotonic() - _failed[0] < RETRY_LOAD_AFTER_S:
                raise _failed[1]
            from inference.embedder import load_embedder  # torch: only in the worker

            try:
                _embedder = load_embedder(settings.EDGE_RERANKER_MODEL or None)
            except Exception as error:
                _failed = (time.monotonic(), error)
                raise
        return _embedder
