"""Reads for the live dashboard, the queue gauges and /readyz: queue and workers from Redis, recent numbers
from the database."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

import redis
from django.db import DatabaseError, connection
from django.db.models import Count, Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext

from edgeportal.core.labels import lanes_label, state_label
from edgeportal.core.queueing import get_queue, pools_known
from edgeportal.jobs.models import Job
from edgeportal.jobs.refusals import refusals_by_rule, rule_label
from edgeportal.latency.buckets import rank
from edgeportal.latency.models import JobLatency
from edgeportal.monitoring import trend
from edgeportal.monitoring.trend_charts import trend_charts
from inference.lanes import LANES
from inference.store.queue import WORKER_ALIVE_S

log = logging.getLogger(__name__)

RECENT = timedelta(minutes=5)


def ago(seconds: float | None) -> str:
    """A short human age: '3 s', '4 min', '2 h'."""
    if seconds is None:
        return gettext("never")
    seconds = max(0.0, seconds)
    if seconds < 90:
        return gettext("%(count)d s") % {"count": round(seconds)}
    if seconds < 90 * 60:
        return gettext("%(count)d min") % {"count": round(seconds / 60)}
    return gettext("%(count)d h") % {"count": round(seconds / 3600)}


def _epoch(value: str | None) -> float | None:
    try:
        seconds = float(value or 0)
    except ValueError:
        return None
    return seconds if seconds > 0 else None  # the worker reports 0 for "no batch yet"


@dataclass
class WorkerStatus:
    name: str
    alive: bool
    state: str  # busy, idle or gone
    model: str
    dtype: str
    device: str
    pool: str
    heartbeat_age_s: float | None
    last_batch_age_s: float | None
    engine: str = ""
    lanes: str = ""
    running: int = 0  # jobs in the batch it runs now
    last_batch_size: int | None = None
    last_batch_ms: float | None = None
    last_batch_lane: str = ""

    @property
    def state_label(self) -> str:
        return state_label(self.state)

    @property
    def lanes_label(self) -> str:
        return lanes_label(self.lanes)

    @property
    def heartbeat_ago(self) -> str:
        return ago(self.heartbeat_age_s)

    @property
    def last_batch_ago(self) -> str:
        return ago(self.last_batch_age_s)


def worker_status(fields: dict[str, str], *, now: float) -> WorkerStatus:
    """One worker from its heartbeat; its hash expires when it stops beating, leaving only name and time."""
    heartbeat_at = _epoch(fields.get("heartbeat_at"))
    heartbeat_age = now - heartbeat_at if heartbeat_at else None
    alive = "state" in fields and heartbeat_age is not None and heartbeat_age <= WORKER_ALIVE_S
    last_batch_at = _epoch(fields.get("last_batch_at"))
    return WorkerStatus(
        name=fields.get("name", ""),
        alive=alive,
        state=fields.get("state", "") if alive else "gone",
        model=fields.get("model", ""),
        dtype=fields.get("dtype", ""),
        device=fields.get("device", ""),
        pool=fields.get("pool", ""),
        heartbeat_age_s=heartbeat_age,
        last_batch_age_s=now - last_batch_at if last_batch_at else None,
        engine=fields.get("engine", ""),
        lanes=fields.get("lanes", ""),
        running=_number(fields.get("running"), int) or 0 if alive else 0,
        last_batch_size=_number(fields.get("last_batch_size"), int),
        last_batch_ms=_number(fields.get("last_batch_ms"), float),
        last_batch_lane=fields.get("last_batch_lane", ""),
    )


def _number(value: str | None, kind):
    """A heartbeat field as a number, or None when it is empty or not one (an older worker's)."""
    try:
        return kind(value) if value not in (None, "") else None
    except ValueError:
        return None


@dataclass
class QueueState:
    reachable: bool
    lane_depths: dict[str, int] = field(default_factory=dict)  # all pools together
    workers: list[WorkerStatus] = field(default_factory=list)
    pool_depths: dict[str, dict[str, int]] = field(default_factory=dict)  # pool name -> lane -> jobs waiting

    def pools(self) -> list[dict]:
        """Each pool with its queue depths and its live workers, for the pages."""
        return [
            {"name": name, "depths": depths, "live": sum(1 for w in self.workers if w.alive and w.pool == name)}
            for name, depths in self.pool_depths.items()
        ]


def queue_state() -> QueueState:
    """Queue depth per lane (in all pools, and per pool) and every worker heard from lately; reachable=False
    when Redis does not answer."""
    try:
        pool_depths, workers = {}, []
        for pool in pools_known():
            queue = get_queue(pool)
            pool_depths[pool.name] = queue.lane_depths()
            workers += [{**worker, "pool": worker.get("pool") or pool.name} for worker in queue.workers()]
        now = get_queue().now()  # heartbeats are stamped on Redis' clock
    except redis.RedisError:
        return QueueState(reachable=False)
    totals = {lane: sum(depths.get(lane, 0) for depths in pool_depths.values()) for lane in LANES}
    trend.safely(trend.trend_depths, totals)  # every look at the queue is a sample of the dashboard's trend
    workers.sort(key=lambda worker: -float(worker.get("heartbeat_at") or 0))
    return QueueState(
        reachable=True, lane_depths=totals, workers=[worker_status(w, now=now) for w in workers],
        pool_depths=pool_depths,
    )  # fmt: skip


def _percentile(values: QuerySet, percentile: int, count: int) -> float | None:
    """Nearest-rank percentile, as the history page defines it, read by the database (ORDER BY ... OFFSET k)."""
    if not count:
        return None
    return values[rank(percentile, count) - 1]


@dataclass
class RecentActivity:
    minutes: float
    finished: int
    done: int
    failed: int
    expired: int
    cache_hits: int
    rejected: int
    rejections_by_rule: list[dict]
    p95_ms: float | None

    @property
    def jobs_per_minute(self) -> float:
        return self.finished / self.minutes

    @property
    def cache_hit_rate(self) -> float | None:
        return 100 * self.cache_hits / self.finished if self.finished else None


def recent_activity(*, window: timedelta = RECENT) -> RecentActivity:
    """What finished and what was refused in the last few minutes (a minute of refusals counts when it starts
    inside the window), aggregated in the database and, for refusals not stored yet, in Redis."""
    since = timezone.now() - window
    latencies = JobLatency.objects.filter(created_at__gte=since)
    counts = latencies.aggregate(
        finished=Count("pk"),
        done=Count("pk", filter=Q(status=Job.Status.DONE)),
        failed=Count("pk", filter=Q(status=Job.Status.FAILED)),
        expired=Count("pk", filter=Q(status=Job.Status.EXPIRED)),
        cache_hits=Count("pk", filter=Q(cache_hit=True)),
    )
    refusals = refusals_by_rule(since=since)
    by_rule = [
        {"rule": rule, "label": rule_label(rule), "count": count}
        for rule, count in sorted(refusals.items(), key=lambda r: (-r[1], r[0]))
    ]
    totals = latencies.values_list("total_ms", flat=True).order_by("total_ms")
    return RecentActivity(
        minutes=window.total_seconds() / 60,
        rejected=sum(refusals.values()),
        rejections_by_rule=by_rule[:5],
        p95_ms=_percentile(totals, 95, counts["finished"]),
        **counts,
    )


@dataclass
class Readiness:
    checks: dict[str, dict]  # database, redis, worker -> {"ok": bool, ...}

    @property
    def failing(self) -> list[str]:
        return [name for name, check in self.checks.items() if not check["ok"]]

    @property
    def ready(self) -> bool:
        return not self.failing


def _database_answers() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError:
        log.warning("readiness: the database does not answer", exc_info=True)
        return False
    return True


def readiness() -> Readiness:
    """Ready to serve jobs: the database answers, Redis answers, and at least one worker is live (a heartbeat
    at most WORKER_ALIVE_S old, as the dashboard counts them) with its model loaded.

    The reasons name no hosts or errors (the endpoint needs no login); the web process's log has them.
    """
    checks = {"database": {"ok": True} if _database_answers() else {"ok": False, "error": "does not answer"}}
    state = queue_state()
    if not state.reachable:
        checks["redis"] = {"ok": False, "error": "does not answer"}
        checks["worker"] = {"ok": False, "error": "unknown while Redis does not answer"}
        return Readiness(checks)
    checks["redis"] = {"ok": True}
    live = sum(1 for worker in state.workers if worker.alive and worker.model)
    checks["worker"] = {"ok": bool(live), "live": live}
    if not live:
        checks["worker"]["error"] = f"no worker with its model loaded beat in the last {WORKER_ALIVE_S:.0f} s"
    return Readiness(checks)


def dashboard_trend() -> list | None:
    """The last fifteen minutes as charts (Redis only: no job table is read), or None while Redis is down."""
    try:
        return trend_charts(trend.trend_read())
    except redis.RedisError:
        return None
