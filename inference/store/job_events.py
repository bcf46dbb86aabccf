"""A job's events in Redis: the text its batch decodes, step by step, and the moment it ends.

One stream per job, job:{id}:events under the installation's prefix (whichever pool runs it; the key's table:
inference.store): the worker appends each step's new text when the job streams (inference.token_stream), and
whoever finishes the job (stores its output, fails it, expires it, answers it from an identical job) appends
`end` once that is committed. A reader (the OpenAI-compatible API) blocks on the stream instead of polling the
database, and reads it from its start, so an event written before it began to read is never missed. Streams
expire a while after their last event.
"""

from __future__ import annotations

from typing import NamedTuple

import redis

EVENTS_TTL_S = 600  # longer than any deadline a reader waits for (the scheduler caps them at 10 minutes)
TOKEN = "t"  # field of a text event: the new text ("" in a job's token count alone)
OFFSET = "o"  # where that text begins in the job's text: a batch that runs again sends it again, and readers skip
MADE = "n"  # the job's tokens so far
END = "end"  # field of the last event (its value: the job's status)


class TextEvent(NamedTuple):
    text: str
    offset: int
    made: int


def events_key(base: str, job_id: int) -> str:
    return f"{base}:job:{job_id}:events"


class JobEvents:
    def __init__(self, client: redis.Redis, base: str):
        self.redis, self.base = client, base

    def publish_text(self, texts: dict[int, TextEvent]) -> None:
        """One step's new text of each job that streams (and the token counts of those that do not)."""
        self._append({job_id: {TOKEN: e.text, OFFSET: e.offset, MADE: e.made} for job_id, e in texts.items()})

    def tokens_made(self, job_ids: list[int]) -> dict[int, int]:
        """How many tokens each of these jobs has made so far, as its last event said (a job that has made
        none yet, or fewer than a count is sent for, is left out). One round trip."""
        if not job_ids:
            return {}
        pipe = self.redis.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.xrevrange(events_key(self.base, job_id), count=1)
        made = {}
        for job_id, last in zip(job_ids, pipe.execute(), strict=True):
            if last and MADE in last[0][1]:
                made[job_id] = int(last[0][1][MADE])
        return made

    def publish_end(self, statuses: dict[int, str]) -> None:
        """These jobs ended (their rows are committed): job id -> status."""
        self._append({job_id: {END: status} for job_id, status in statuses.items()})

    def _append(self, events: dict[int, dict]) -> None:
        """One event to each job's stream, in one round trip; each stream lives EVENTS_TTL_S past its last."""
        if not events:
            return
        pipe = self.redis.pipeline(transaction=False)
        for job_id, fields in events.items():
            key = events_key(self.base, job_id)
            pipe.xadd(key, fields)
            pipe.expire(key, EVENTS_TTL_S)
        pipe.execute()


async def read_events(client, base: str, job_id: int, *, after: str, block_ms: int) -> list[tuple[str, dict]]:
    """The job's events after `after` (an event id; "0-0": from its first), waiting up to block_ms for one.
    client: a redis.asyncio client with text answers."""
    found = await client.xread({events_key(base, job_id): after}, count=256, block=max(1, block_ms))
    return [(event_id, fields) for _, entries in found for event_id, fields in entries]
