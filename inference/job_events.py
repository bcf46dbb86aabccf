"""A job's events in Redis: the text its batch decodes, step by step, and the moment it ends.

One stream per job, under the installation's prefix (whichever pool runs it): the worker appends each step's
new text when the job streams (inference.token_stream), and whoever finishes the job (stores its output,
fails it, expires it, answers it from an identical job) appends `end` once that is committed. A reader (the
OpenAI-compatible API) blocks on the stream instead of polling the database, and reads it from its start,
so an event written before it began to read is never missed. Streams expire a while after their last event.
"""

from __future__ import annotations

import redis

EVENTS_TTL_S = 600  # longer than any deadline a reader waits for (the scheduler caps them at 10 minutes)
TOKEN = "t"  # field of a text event: the new text; "n": the job's tokens so far
END = "end"  # field of the last event (its value: the job's status)


def events_key(base: str, job_id: int) -> str:
    return f"{base}:job:{job_id}:events"


class JobEvents:
    def __init__(self, client: redis.Redis, base: str):
        self.redis, self.base = client, base

    def publish_text(self, texts: dict[int, tuple[str, int]]) -> None:
        """One step's new text of each job that streams: job id -> (text, its tokens so far). One round trip."""
        if not texts:
            return
        pipe = self.redis.pipeline(transaction=False)
        for job_id, (text, tokens) in texts.items():
            key = events_key(self.base, job_id)
            pipe.xadd(key, {TOKEN: text, "n": tokens})
            pipe.expire(key, EVENTS_TTL_S)
        pipe.execute()

    def tokens_made(self, job_ids: list[int]) -> dict[int, int]:
        """How many tokens each of these jobs has made so far, as its last streamed text said (jobs that do
        not stream, or have made none yet, are left out). One round trip."""
        if not job_ids:
            return {}
        pipe = self.redis.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.xrevrange(events_key(self.base, job_id), count=1)
        made = {}
        for job_id, last in zip(job_ids, pipe.execute(), strict=True):
            if last and "n" in last[0][1]:
                made[job_id] = int(last[0][1]["n"])
        return made

    def publish_end(self, statuses: dict[int, str]) -> None:
        """These jobs ended (their rows are committed): job id -> status."""
        if not statuses:
            return
        pipe = self.redis.pipeline(transaction=False)
        for job_id, status in statuses.items():
            key = events_key(self.base, job_id)
            pipe.xadd(key, {END: status})
            pipe.expire(key, EVENTS_TTL_S)
        pipe.execute()


async def read_events(client, base: str, job_id: int, *, after: str, block_ms: int) -> list[tuple[str, dict]]:
    """The job's events after `after` (an event id; "0-0": from its first), waiting up to block_ms for one.
    client: a redis.asyncio client with text answers."""
    found = await client.xread({events_key(base, job_id): after}, count=256, block=max(1, block_ms))
    return [(event_id, fields) for _, entries in found for event_id, fields in entries]
