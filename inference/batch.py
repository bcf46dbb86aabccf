"""One batch's run: what the model did for its jobs, handed to the result sink (inference.worker.ResultSink)."""

from __future__ import annotations

from dataclasses import dataclass, field

from inference.settings import SchedulerSettings
from inference.store.queue import QueuedJob


@dataclass(frozen=True)
class JobResult:
    job_id: int
    text: str
    prompt_tokens: int
    new_tokens: int
    picked_at: float
    finish_reason: str = "stop"  # or "length": it reached its token limit
    choice: dict | None = None  # why this answer, for a job of several candidates (inference.candidates)
    cached: dict | None = None  # taken from the semantic cache: its similarity (inference.semantic_cache)


@dataclass
class BatchRun:
    """What one batch did, handed to the sink before and after inference."""

    batch_id: str
    worker: str
    jobs: list[QueuedJob]
    settings: SchedulerSettings
    lane: str
    window_ms: int
    window_opened_at: float
    inference_started_at: float
    inference_ended_at: float | None = None
    first_token_at: float | None = None  # when its first decoding step ended (None: not measured)
    paused_ms: float = 0.0  # a long batch's time standing aside for short batches (inside inference_ms)
    padded_tokens: int = 0
    results: list[JobResult] = field(default_factory=list)
    failures: dict[int, str] = field(default_factory=dict)  # job id -> reason
    copies: dict[int, int] = field(default_factory=dict)  # job id -> the identical job whose run answered it

    @property
    def inference_ms(self) -> float:
        return ((self.inference_ended_at or self.inference_started_at) - self.inference_started_at) * 1000

    @property
    def model_ms(self) -> float:
        """The model's time on this batch: its inference time without pauses."""
        return self.inference_ms - self.paused_ms
