"""Fill the database with synthetic jobs, latency and batch records, to check the history page's speed by hand."""

import contextlib
import random
import time
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from edgeportal.jobs.models import Job
from edgeportal.latency.models import BatchRecord, JobLatency
from edgeportal.prompts.models import PromptTemplate
from edgeportal.sources.models import Source
from inference.lanes import Lane

CHUNK = 5000
WORKERS = ["worker1@edge-a", "worker2@edge-a", "worker1@edge-b"]


@contextlib.contextmanager
def created_at_as_given(*models):
    """bulk_create keeps the created_at we give instead of stamping now (auto_now_add)."""
    fields = [model._meta.get_field("created_at") for model in models]
    for field in fields:
        field.auto_now_add = False
    try:
        yield
    finally:
        for field in fields:
            field.auto_now_add = True


class Command(BaseCommand):
    help = "Add N synthetic finished jobs with latency records (and a batch record per 5 jobs) over the last days."

    def add_arguments(self, parser):
        parser.add_argument("--records", type=int, default=1_000_000)
        parser.add_argument("--days", type=int, default=30, help="spread the records over this many past days")
        parser.add_argument("--seed", type=int, default=7)

    def handle(self, *args, records, days, seed, **options):
        if records < 1 or days < 1:
            raise CommandError("--records and --days must be at least 1")
        rng = random.Random(seed)
        templates = [None, *PromptTemplate.objects.all()[:5]]
        sources = [None, *Source.objects.all()[:5]]
        now = timezone.now()
        span_s = days * 86400
        started = time.monotonic()
        with created_at_as_given(Job, JobLatency, BatchRecord):
            for done in range(0, records, CHUNK):
                size = min(CHUNK, records - done)
                moments = sorted(now - timedelta(seconds=rng.uniform(0, span_s)) for _ in range(size))
                with transaction.atomic():
                    self._chunk(rng, moments, templates, sources)
                self.stdout.write(f"{done + size} records ({time.monotonic() - started:.0f} s)")

    def _chunk(self, rng, moments, templates, sources):
        jobs, rows = [], []
        for created in moments:
            template, source = rng.choice(templates), rng.choice(sources)
            lane = Lane.LONG if rng.random() < 0.2 else Lane.SHORT
            status = rng.choices(["done", "failed", "expired"], weights=[90, 7, 3])[0]
            cache_hit = status == "done" and rng.random() < 0.2
            batch_size = None if cache_hit or status == "expired" else rng.randint(1, 8)
            queue = None if cache_hit else rng.lognormvariate(3.5, 1.0)
            window = rng.uniform(0, 60) if batch_size else None
            inference = (300 + 150 * batch_size) * rng.uniform(0.8, 1.3) if batch_size else None
            total = rng.uniform(1, 5) if cache_hit else sum(v for v in (queue, window, inference) if v is not None)
            jobs.append(
                Job(
                    prompt="synthetic", max_new_tokens=32, status=status, lane=lane, template=template, source=source,
                    cache_hit=cache_hit, created_at=created, finished_at=created + timedelta(milliseconds=total),
                )
            )  # fmt: skip
            rows.append(
                dict(
                    status=status, cache_hit=cache_hit, template=template, source=source, lane=lane,
                    queue_wait_ms=queue, window_wait_ms=window, inference_ms=inference, total_ms=total,
                    batch_size=batch_size, prompt_tokens=rng.randint(20, 200) if batch_size else None,
                    output_tokens=rng.randint(5, 32) if batch_size else None,
                    worker="" if cache_hit else rng.choice(WORKERS), created_at=created,
                )
            )  # fmt: skip
        Job.objects.bulk_create(jobs)
        JobLatency.objects.bulk_create(JobLatency(job=job, **row) for job, row in zip(jobs, rows, strict=True))
        batches = []
        for created in moments[::5]:
            size = rng.randint(1, 8)
            prompt_tokens = size * rng.randint(20, 200)
            batches.append(
                BatchRecord(
                    batch_id=f"synthetic-{rng.getrandbits(60):x}", worker=rng.choice(WORKERS), size=size,
                    prompt_tokens=prompt_tokens, padded_tokens=int(prompt_tokens * rng.uniform(1.0, 1.6)),
                    output_tokens=size * 20, window_opened_at=created, inference_started_at=created,
                    inference_ms=(300 + 150 * size) * rng.uniform(0.8, 1.3), lane=Lane.SHORT, window_ms=60,
                    max_batch_size=8, created_at=created,
                )
            )  # fmt: skip
        BatchRecord.objects.bulk_create(batches)
