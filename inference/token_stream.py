"""A batch's decoding steps as text for the jobs that stream: what the step hook hands over, turned into
each job's new settled text (inference.decoding.settled_text) and published in one round trip per step.
Jobs that do not stream only say, every few steps, how many tokens they have made (the job list shows it)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

import redis

from inference.decoding import Decoding, Detokenizer, settled_text
from inference.store.job_events import TextEvent

log = logging.getLogger(__name__)

PROGRESS_EVERY = 8  # steps between two token counts of a job that does not stream


class TokenStreams:
    """The step callback of one batch. rows: for each row of the batch, the ids of its jobs (a row may
    answer several identical jobs: single flight); streaming: the ids of those that stream their text. It
    also notes when the first tokens existed (every job's time to first token)."""

    def __init__(
        self,
        rows: Sequence[list[int]],
        streaming: set[int],
        decodings: Sequence[Decoding],
        decode: Callable[[list[int]], str],
        publish: Callable[[dict[int, TextEvent]], None],
    ):
        self.rows, self.streaming, self.decodings, self.publish = rows, streaming, decodings, publish
        self.texts = [Detokenizer(decode) if set(jobs) & streaming else None for jobs in rows]
        self.made = [0] * len(rows)
        self.sent = [""] * len(rows)
        self.steps = 0
        self.failed = False
        self.first_at: float | None = None  # epoch seconds of the first step

    def __call__(self, step: list[int | None]) -> None:
        if self.first_at is None:
            self.first_at = time.time()
        self.steps += 1
        events: dict[int, TextEvent] = {}
        for row, token in enumerate(step):
            if token is None:
                continue
            self.made[row] += 1
            if self.texts[row] is not None:
                events.update(self._text(row, token))
            if self.steps % PROGRESS_EVERY == 0:
                for job_id in self.rows[row]:
                    events.setdefault(job_id, TextEvent("", len(self.sent[row]), self.made[row]))
        if events and not self.failed:
            try:
                self.publish(events)
            except redis.RedisError:
                # The batch matters more than its live text: the outputs are stored, and readers get them whole.
                self.failed = True
                log.warning("could not publish streamed text; the rest of this batch streams nothing")

    def _text(self, row: int, token: int) -> dict[int, TextEvent]:
        settled = settled_text(self.texts[row].push(token), self.decodings[row].stop)
        sent = self.sent[row]
        # Only ever forward: a tokenizer that rewrote earlier text would make a stream contradict itself.
        if len(settled) <= len(sent) or not settled.startswith(sent):
            return {}
        self.sent[row] = settled
        event = TextEvent(settled[len(sent) :], len(sent), self.made[row])
        return {job_id: event for job_id in self.rows[row] if job_id in self.streaming}
