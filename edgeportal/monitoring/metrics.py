"""The /metrics exposition: every process's counters and histograms (defined and observed in
edgeportal.core.metrics) and the gauges read when Prometheus scrapes (the queue, overdue deliveries)."""

import logging

import redis

# First: it sets PROMETHEUS_MULTIPROC_DIR, which prometheus_client reads once, when it is first imported.
from edgeportal.core.metrics import DELIVERY_ATTEMPTS, DELIVERY_OUTCOMES, EXPIRIES, MULTIPROC_DIR, REQUESTS

# isort: split
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily

from edgeportal.jobs.models import Job

CONTENT_TYPE = CONTENT_TYPE_LATEST  # the views never import prometheus_client themselves


def _known_series_at_zero() -> None:
    """Known label values are exported from 0 on, so rate() sees the first request of each kind.

    Done at scrape time by the web process, not at import by every process that loads this module.
    """
    for status in Job.FINISHED:
        REQUESTS.labels(status=status)
    for priority in Job.Priority.values:
        EXPIRIES.labels(priority=priority)
    for outcome in DELIVERY_OUTCOMES:
        DELIVERY_ATTEMPTS.labels(outcome=outcome)


class QueueCollector:
    """Queue depth, its limit and workers alive, read from Redis when Prometheus scrapes (only the web process
    asks)."""

    def collect(self):
        from edgeportal.core.queueing import scheduler_settings
        from edgeportal.monitoring.selectors import queue_state  # Django models: loaded once apps are ready

        state = queue_state()
        reachable = GaugeMetricFamily("edgeportal_queue_up", "1 if the job queue (Redis) answered this scrape.")
        reachable.add_metric([], 1 if state.reachable else 0)
        yield reachable
        if not state.reachable:
            return  # no number rather than a wrong zero
        depth = GaugeMetricFamily(
            "edgeportal_queue_depth", "Jobs waiting in each lane, not yet taken by a worker.", labels=["lane"]
        )
        for lane, count in sorted(state.lane_depths.items()):
            depth.add_metric([lane], count)
        yield depth
        alive = GaugeMetricFamily("edgeportal_workers_alive", "Workers whose last heartbeat is recent.")
        alive.add_metric([], sum(1 for worker in state.workers if worker.alive))
        yield alive
        # Per pool (a model on a class of device: inference.pools), beside the totals above.
        pool_depth = GaugeMetricFamily(
            "edgeportal_pool_queue_depth", "Jobs waiting in each lane of each pool.", labels=["pool", "lane"]
        )
        pool_alive = GaugeMetricFamily("edgeportal_pool_workers_alive", "Live workers of each pool.", labels=["pool"])
        for pool in state.pools():
            for lane, count in sorted(pool["depths"].items()):
                pool_depth.add_metric([pool["name"], lane], count)
            pool_alive.add_metric([pool["name"]], pool["live"])
        yield pool_depth
        yield pool_alive
        try:
            queue_limit = scheduler_settings().queue_limit
        except redis.RedisError:
            return  # Redis went away since queue_state(): no number rather than a wrong one
        # What admission compares each pool's waiting jobs (all lanes) with: alerts on a filling queue need it.
        limit = GaugeMetricFamily(
            "edgeportal_queue_limit", "Jobs a pool may hold waiting (all lanes) before admission refuses more."
        )
        limit.add_metric([], queue_limit)
        yield limit


OVERDUE_S = 60  # a delivery due this long ago and not under way: nobody sends (no exits worker?)


class DeliveryCollector:
    """Deliveries due for a minute that nobody is sending, read from the database when Prometheus scrapes: with
    no exits worker running nothing is attempted, so no failure counter moves; this gauge does."""

    def collect(self):
        from datetime import timedelta

        from django.db import DatabaseError
        from django.db.models import Q
        from django.utils import timezone

        from edgeportal.delivery.models import Delivery

        late = timezone.now() - timedelta(seconds=OVERDUE_S)
        try:
            overdue = Delivery.objects.filter(
                Q(status__in=Delivery.WAITING, next_attempt_at__lt=late)
                | Q(status=Delivery.Status.SENDING, lease_until__lt=late)
            ).count()
        except Exception as error:  # the database down, say: the scrape still answers, without this number
            if not isinstance(error, DatabaseError):
                logging.getLogger(__name__).warning("deliveries overdue not read: %s", error)
            return  # no number rather than a wrong zero
        gauge = GaugeMetricFamily(
            "edgeportal_deliveries_overdue",
            f"Deliveries due more than {OVERDUE_S} s ago that no exits worker is sending.",
        )
        gauge.add_metric([], overdue)
        yield gauge


def exposition() -> bytes:
    """Every process's counters and histograms, plus the queue gauges, in Prometheus' text format."""
    _known_series_at_zero()
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(MULTIPROC_DIR))
    registry.register(QueueCollector())
    registry.register(DeliveryCollector())
    return generate_latest(registry)
