"""Prometheus metrics: their definitions and the calls that observe them. Infrastructure, like the queue client:
jobs, outputs, delivery and the workers count here without importing monitoring, which serves /metrics
(edgeportal.monitoring.metrics) and connects the dashboard's trend to the same events (core.metric_listeners).

prometheus_client runs in multiprocess mode: the web processes and the workers (where batches are recorded)
each write their numbers to files in PROMETHEUS_MULTIPROC_DIR, and a scrape of any web process adds them up.
"""

import os
import re
from collections.abc import Iterable
from pathlib import Path

# prometheus_client picks its multiprocess mode once, when it is first imported, so the folder must be in
# the environment before that. scripts/run.sh exports it (and empties it at start); this is the fallback.
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(Path(__file__).resolve().parents[2] / ".cache" / "prometheus"))

from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from prometheus_client import Counter, Histogram, multiprocess, values

from edgeportal.core.metric_listeners import depths_listeners, finished_listeners, refused_listeners

MULTIPROC_DIR = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
if values.ValueClass is values.MutexValue:
    # Each process would count on its own and /metrics would show only the web's share: fail loudly instead.
    raise ImproperlyConfigured("prometheus_client was imported before PROMETHEUS_MULTIPROC_DIR was set.")
MULTIPROC_DIR.mkdir(parents=True, exist_ok=True)  # a process started without scripts/run.sh

# From a cache hit (about a millisecond) to a long batch on a busy CPU (a minute).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60)
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)

# registry=None: in multiprocess mode the numbers are read from the files, never from a process's registry.
QUEUE_SECONDS = Histogram(
    "edgeportal_request_queue_seconds", "Queue wait: created until entering a worker's batch window.",
    ["lane"], buckets=LATENCY_BUCKETS, registry=None,
)  # fmt: skip
WINDOW_SECONDS = Histogram(
    "edgeportal_request_window_seconds", "Window wait: entering the batch window until inference started.",
    ["lane"], buckets=LATENCY_BUCKETS, registry=None,
)  # fmt: skip
INFERENCE_SECONDS = Histogram(
    "edgeportal_request_inference_seconds", "Inference time of the batch a request ran in.",
    ["lane"], buckets=LATENCY_BUCKETS, registry=None,
)  # fmt: skip
DURATION_SECONDS = Histogram(
    "edgeportal_request_duration_seconds", "End-to-end time of a finished request: created until finished.",
    ["lane"], buckets=LATENCY_BUCKETS, registry=None,
)  # fmt: skip
BATCH_SIZE = Histogram(
    "edgeportal_batch_size", "Requests per batch run by the model.", buckets=BATCH_SIZE_BUCKETS, registry=None
)
REQUESTS = Counter("edgeportal_requests", "Finished requests, by how they ended.", ["status"], registry=None)
CACHE_HIT_KINDS = ("exact", "flight", "semantic")
CACHE_HITS = Counter(
    "edgeportal_cache_hits",
    "Requests answered without a run of their own, by kind: the prompt cache (exact), an identical request's run "
    "(flight) or a close request's answer (semantic).", ["kind"], registry=None,
)  # fmt: skip
REJECTIONS = Counter("edgeportal_rejections", "Requests the entry refused, by rule.", ["rule"], registry=None)
EXPIRIES = Counter(
    "edgeportal_requests_expired", "Requests whose deadline passed before they ran, by priority.", ["priority"],
    registry=None,
)  # fmt: skip
# A template's outputs (edgeportal.outputs) and their deliveries to destinations (edgeportal.delivery).
OUTPUTS = Counter(
    "edgeportal_outputs", "Finished outputs of jobs, by output name and how they ended.", ["output", "status"],
    registry=None,
)  # fmt: skip
LANGUAGE_MISMATCHES = Counter(
    "edgeportal_output_language_mismatch", "Outputs that ended in another language than asked, by output name.",
    ["output"], registry=None,
)  # fmt: skip
DELIVERY_ATTEMPTS = Counter(
    "edgeportal_delivery_attempts", "Attempts to send an output to a destination, by outcome.", ["outcome"],
    registry=None,
)  # fmt: skip
DEAD_LETTERS = Counter(
    "edgeportal_delivery_dead_letters", "Deliveries given up after their last attempt failed.", registry=None
)
DELIVERY_OUTCOMES = ("delivered", "failed")
# Output names are admins' slugs (prompts.output_spec: lower-case, at most 40 characters), so each is one series per
# status; anything else is counted as "other" rather than becoming a label value nobody bounded.
OUTPUT_NAME = re.compile(r"[a-z][a-z0-9_-]{0,39}")
OTHER_OUTPUT = "other"
# The statuses' values, as core imports no app (tests/monitoring/test_metrics.py holds them to the models'):
# JobOutput.FINAL, JobOutput.Status.LANGUAGE_MISMATCH and Job.Status.EXPIRED.
FINAL_OUTPUT_STATUSES = ("done", "language_mismatch", "invalid", "failed", "expired")
LANGUAGE_MISMATCH = "language_mismatch"
JOB_EXPIRED = "expired"


def jobs_finished(latencies) -> None:
    """Count finished jobs from their JobLatency records, once the transaction that stored them commits."""
    latencies = list(latencies)
    if latencies:
        # robust: a metrics failure is logged, never turned into a failed batch.
        transaction.on_commit(lambda: _observe_finished(latencies), robust=True)
        for listener in finished_listeners:
            transaction.on_commit(lambda listener=listener: listener(latencies), robust=True)


def queue_depths_seen(depths: dict[str, int]) -> None:
    """Each lane's depth (all pools) as beat's sweep read it, so the dashboard's trend has depths while nobody
    watches."""
    for listener in depths_listeners:
        listener(depths)


def batch_stored(size: int) -> None:
    """Count a batch the model ran, by its size, once the transaction that stored it commits."""
    transaction.on_commit(lambda: BATCH_SIZE.observe(size), robust=True)


def job_rejected(rule: str) -> None:
    """Count a request the entry refused (the rule is one of the entry's fixed codes)."""
    transaction.on_commit(lambda: REJECTIONS.labels(rule=rule).inc(), robust=True)
    for listener in refused_listeners:
        transaction.on_commit(lambda listener=listener: listener(rule), robust=True)


def outputs_finished(outputs: Iterable) -> None:
    """Count outputs that reached a final status (JobOutput or alike: .name, .status), once the transaction
    that stored them commits; an output not final yet is not counted."""
    finished = [
        (_output_label(output.name), str(output.status)) for output in outputs if output.status in FINAL_OUTPUT_STATUSES
    ]
    if finished:
        transaction.on_commit(lambda: _observe_outputs(finished), robust=True)


def delivery_attempted(outcome: str) -> None:
    """Count one attempt to send an output to a destination, once the transaction that records it commits:
    outcome is "delivered" or "failed" (another is logged as an error and not counted)."""
    transaction.on_commit(lambda: _observe_attempt(outcome), robust=True)


def delivery_dead() -> None:
    """Count a delivery given up for good (a dead letter), once the transaction that marks it commits."""
    transaction.on_commit(DEAD_LETTERS.inc, robust=True)


def _observe_attempt(outcome: str) -> None:
    if outcome not in DELIVERY_OUTCOMES:
        raise ValueError(f"unknown delivery outcome {outcome!r}: one of {', '.join(DELIVERY_OUTCOMES)}")
    DELIVERY_ATTEMPTS.labels(outcome=outcome).inc()


def _output_label(name: object) -> str:
    return name if isinstance(name, str) and OUTPUT_NAME.fullmatch(name) else OTHER_OUTPUT


def _observe_outputs(finished: list[tuple[str, str]]) -> None:
    for name, status in finished:
        # An output name's series start at 0 with its first output, so rate() sees its first mismatch.
        for each in FINAL_OUTPUT_STATUSES:
            OUTPUTS.labels(output=name, status=each)
        mismatches = LANGUAGE_MISMATCHES.labels(output=name)
        OUTPUTS.labels(output=name, status=status).inc()
        if status == LANGUAGE_MISMATCH:
            mismatches.inc()


def cache_hit_kind(job) -> str:
    """How a job that is a cache hit was answered: one of CACHE_HIT_KINDS."""
    if job.cache_similarity is not None:
        return "semantic"
    return "flight" if job.follows_id is not None else "exact"


def _observe_finished(latencies) -> None:
    for latency in latencies:
        REQUESTS.labels(status=latency.status).inc()
        if latency.cache_hit:
            for kind in CACHE_HIT_KINDS:  # every kind's series from the first hit on, so rate() sees each one's first
                CACHE_HITS.labels(kind=kind)
            CACHE_HITS.labels(kind=cache_hit_kind(latency.job)).inc()
        if latency.status == JOB_EXPIRED:
            EXPIRIES.labels(priority=latency.priority).inc()
        for histogram, ms in (
            (QUEUE_SECONDS, latency.queue_wait_ms),
            (WINDOW_SECONDS, latency.window_wait_ms),
            (INFERENCE_SECONDS, latency.inference_ms),
            (DURATION_SECONDS, latency.total_ms),
        ):
            if ms is not None:  # a stage the job never reached (a cache hit never queued)
                histogram.labels(lane=latency.lane).observe(ms / 1000)


def process_dead() -> None:
    """Called when a worker process exits: drop the files of its live gauges (its counters must stay)."""
    multiprocess.mark_process_dead(os.getpid())
