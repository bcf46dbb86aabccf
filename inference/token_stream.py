"""A batch's decoding steps as text for the jobs that stream: what the step hook hands over, turned into
each job's new settled text (inference.decoding.settled_text) and published in one round trip per step."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

import redis

from inference.decoding import Decoding, settled_text

log = logging.getLogger(__name__)


class TokenStreams:
    """The step callback of one batch. rows: for each row of the batch, the ids of the jobs that stream its
    text (a row may answer several identical jobs: single flight); rows without any are not decoded. It also
    notes when the first tokens existed (every job's time to first token)."""

    def __init__(
        self,
        rows: Sequence[list[int]],
        decodings: Sequence[Decoding],
        decode: Callable[[list[int]], str],
        publish: Callable[[dict[int, tuple[str, int]]], None],
    ):
        self.rows, self.decodings, self.decode, self.publish = rows, decodings, decode, publish
        self.tokens: list[list[int]] = [[] for _ in rows]
        self.sent = [""] * len(rows)
        self.failed = False
        self.first_at: float | None = None  # epoch seconds of the first step

    def __call__(self, step: list[int | None]) -> None:
        if self.first_at is None:
            self.first_at = time.time()
        texts: dict[int, tuple[str, int]] = {}
        for row, token in enumerate(step):
            if token is None or not self.rows[row]:
                continue
            self.tokens[row].append(token)
            settled = settled_text(self.decode(self.tokens[row]), self.decodings[row].stop)
            # Only ever forward: a tokenizer that rewrote earlier text would make a stream contradict itself.
            if len(settled) > len(self.sent[row]) and settled.startswith(self.sent[row]):
                new, self.sent[row] = settled[len(self.sent[row]) :], settled
                texts.update({job_id: (new, len(self.tokens[row])) for job_id in self.rows[row]})
        if texts and not self.failed:
            try:
                self.publish(texts)
            except redis.RedisError:
                # The batch matters more than its live text: the outputs are stored, and readers get them whole.
                self.failed = True
                log.warning("could not publish streamed text; the rest of this batch streams nothing")
