"""Keeping the job table and Redis bounded: old jobs pruned (their latency history kept), the pages' queries
answered from indexes, and what dead workers left in Redis cleared."""

import time
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from edgeportal.jobs.models import Job
from edgeportal.jobs.services import jobs_prune
from edgeportal.jobs.tasks import requeue_lost_jobs
from edgeportal.latency.models import BatchRecord, JobLatency, LatencyHour
from edgeportal.latency.services import latency_roll_up

pytestmark = pytest.mark.django_db(transaction=True)


def job(*, days_old: float, status: str = "done", **fields) -> Job:
    created = Job.objects.create(prompt="p", max_new_tokens=8, status=status, output="an answer", **fields)
    Job.objects.filter(pk=created.pk).update(created_at=timezone.now() - timedelta(days=days_old))
    return created


def test_finished_jobs_past_the_retention_are_deleted_and_their_latency_history_stays():
    batch = BatchRecord.objects.create(
        batch_id="b1", worker="w1", size=2, prompt_tokens=8, padded_tokens=8, output_tokens=4,
        window_opened_at=timezone.now(), inference_started_at=timezone.now(), inference_ms=10, window_ms=0,
        max_batch_size=8,
    )  # fmt: skip
    old = job(days_old=40, batch=batch, cache_key="k")
    latency = JobLatency.objects.create(job=old, batch=batch, status="done", total_ms=12, worker="w1")
    answered = job(days_old=1, cache_key="k", cache_hit=True, follows=old)  # answered by the old one's run
    recent = job(days_old=29)
    stuck = job(days_old=40, status=Job.Status.QUEUED)  # never deleted while unfinished: the sweep owns it
    assert jobs_prune(older_than_days=30) == 1
    assert set(Job.objects.values_list("pk", flat=True)) == {answered.pk, recent.pk, stuck.pk}
    latency.refresh_from_db()
    assert latency.job_id is None and latency.batch_id == batch.pk  # the history keeps it until rolled up
    answered.refresh_from_db()
    assert answered.follows_id is None and answered.output == "an answer" and answered.cache_hit
    assert BatchRecord.objects.filter(pk=batch.pk).exists()
    JobLatency.objects.filter(pk=latency.pk).update(created_at=timezone.now() - timedelta(days=40))
    assert latency_roll_up(older_than_days=30) == 1  # a record without its job rolls up like any other
    assert LatencyHour.objects.get().count == 1


def test_the_history_lists_a_record_whose_job_was_pruned(client, admin_user):
    old = job(days_old=2)
    JobLatency.objects.create(job=old, status="done", total_ms=12)
    jobs_prune(older_than_days=1)
    client.force_login(admin_user)
    response = client.get("/latency/")
    assert response.status_code == 200 and "pruned" in response.content.decode()


def full_scans_of_jobs(sql: str) -> list[str]:
    """The steps of a query's plan that read the whole jobs table (or a whole index of it, outside a
    LIMITed walk in index order)."""
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("EXPLAIN QUERY PLAN " + sql)
            steps = [row[-1] for row in cursor.fetchall()]
            limited = " LIMIT " in sql
            return [
                step for step in steps
                if step.startswith("SCAN jobs_job") and not (limited and "USING INDEX" in step)
            ]  # fmt: skip
        cursor.execute("SET enable_seqscan = off")  # a tiny table: make the planner show its index paths
        try:
            cursor.execute("EXPLAIN (FORMAT JSON) " + sql)
            [[plan]] = cursor.fetchone()
        finally:
            cursor.execute("RESET enable_seqscan")
        found = []

        def walk(node, limited):
            limited = limited or node["Node Type"] == "Limit"
            if node.get("Relation Name") == "jobs_job":
                whole_index = node["Node Type"] in ("Index Scan", "Index Only Scan") and "Index Cond" not in node
                if node["Node Type"] == "Seq Scan" or (whole_index and not limited):
                    found.append(f"{node['Node Type']} on jobs_job")
            for child in node.get("Plans", []):
                walk(child, limited)

        walk(plan["Plan"], False)
        return found


def test_the_job_list_reads_the_job_table_through_its_indexes(manager_client):
    for days in (0, 0.01, 2):
        job(days_old=days)
    job(days_old=0, status=Job.Status.QUEUED)
    with CaptureQueriesContext(connection) as queries:
        assert manager_client.get("/jobs/", headers={"HX-Request": "true"}).status_code == 200  # what htmx polls
    reads = [q["sql"] for q in queries.captured_queries if '"jobs_job"' in q["sql"] and q["sql"].startswith("SELECT")]
    assert len(reads) >= 2
    for sql in reads:
        assert full_scans_of_jobs(sql) == [], sql


def test_the_sweep_clears_what_dead_workers_left_in_redis(queue):
    now = time.time()
    queue.redis.zadd(queue.workers_key, {"live@h": now, "dead@h": now - 120})
    for lane in ("short", "long"):
        queue.redis.zadd(queue.lane_workers_key(lane), {"live@h": now, "dead@h": now - 120})
    queue.redis.hset(queue.busy_key, mapping={"live@h": now + 5, "dead@h": now - 100, "forgotten@h": now - 9000})
    queue.redis.hset(queue.long_runs_key, mapping={"live@h": f"{now + 9},100", "dead@h": f"{now - 90},100"})
    requeue_lost_jobs()  # the beat task
    for lane in ("short", "long"):
        assert queue.redis.zrange(queue.lane_workers_key(lane), 0, -1) == ["live@h"]
    assert list(queue.redis.hgetall(queue.busy_key)) == ["live@h"]
    assert list(queue.redis.hgetall(queue.long_runs_key)) == ["live@h"]
    assert queue.redis.zscore(queue.workers_key, "dead@h") is not None  # the dashboard shows it gone for an hour
