"""Dashboard benchmark: how fast the live dashboard answers with an empty database and with a million jobs
stored (issue 16: ≤ 100 ms with 1M jobs, on PostgreSQL), side by side in one run.

Run with `make bench-dashboard` (PostgreSQL, `edgeportal_bench`, dropped and made anew: never a database you
keep). The jobs and their latency records are written by SQL (generate_series) spread over the last 30 days,
with the last fifteen minutes as busy as a saturated node (6 jobs a second), and the dashboard's trend counted
in Redis as those jobs would have been. Each measurement is the server's own time for the page and for the
fragment htmx polls every 3 s (Django's test client in this process: no network), after a warm-up.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import harness

GOAL_MS = 100
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/edgeportal_bench"
RECENT_PER_S = 6  # a saturated node (BENCHMARKS.md, engines): what the last fifteen minutes hold


def fill(total: int) -> None:
    """`total` finished jobs and their latency records: all but the last fifteen minutes' spread over 30 days."""
    from django.db import connection

    recent = min(total, RECENT_PER_S * 15 * 60)
    with connection.cursor() as cursor:
        for count, span in ((total - recent, "30 days"), (recent, "15 minutes")):
            cursor.execute(
                f"""
                INSERT INTO jobs_job (variables, prompt, system_prompt, max_new_tokens, decoding, status, priority,
                    lane, model, pool, output, error, finish_reason, worker, cache_key, cache_hit, created_at,
                    deadline_at, finished_at, prompt_tokens, output_tokens)
                SELECT '{{}}', 'Press line P3 reports current fluctuation #' || n, '', 32, '{{}}',
                    CASE WHEN n %% 50 = 0 THEN 'expired' ELSE 'done' END, 'normal', 'short', '', '',
                    'Check the drive.', '', 'length', 'worker1@node', '', n %% 5 = 0,
                    now() - random() * interval '{span}', now(), now(), 40, 32
                FROM generate_series(1, %s) AS n
                """,
                [count],
            )
        cursor.execute(
            """
            INSERT INTO latency_joblatency (job_id, status, cache_hit, lane, priority, deadline_ms, queue_wait_ms,
                window_wait_ms, inference_ms, total_ms, batch_size, prompt_tokens, output_tokens, worker, created_at)
            SELECT id, status, cache_hit, lane, priority, 10000, 20 + random() * 200, 30 + random() * 30,
                400 + random() * 600, 500 + random() * 1000, 8, 40, 32, worker, created_at
            FROM jobs_job
            """
        )
        cursor.execute("ANALYZE jobs_job; ANALYZE latency_joblatency")


def fill_trend(recent: int) -> None:
    """The trend counts of the last fifteen minutes' jobs, all in the current minute (the trend counts on Redis'
    clock): a read costs the same, one small hash per minute."""
    from edgeportal.latency.models import JobLatency
    from edgeportal.monitoring.trend import trend_finished

    for _ in range(15):
        trend_finished([JobLatency(status="done", total_ms=900.0) for _ in range(recent // 15)])


def measure(client, path: str, rounds: int, **headers) -> list[float]:
    for _ in range(5):  # warm-up: connections, templates, the catalog
        client.get(path, headers=headers)
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        response = client.get(path, headers=headers)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.status_code
    return times


def run(rounds: int, jobs: int) -> list[dict]:
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.test import Client

    from edgeportal.jobs.models import Job

    call_command("migrate", verbosity=0)
    user = User.objects.create_user("bench", password="bench-pass-1")
    client = Client(HTTP_HOST="127.0.0.1")  # the benchmark's ALLOWED_HOSTS
    client.force_login(user)
    rows = []
    for stored in (0, jobs):
        if stored:
            started = time.perf_counter()
            fill(stored)
            fill_trend(min(stored, RECENT_PER_S * 15 * 60))
            print(f"stored {Job.objects.count()} jobs in {time.perf_counter() - started:.0f} s", flush=True)
        for what, headers in (("page", {}), ("fragment (htmx, every 3 s)", {"HX-Request": "true"})):
            times = measure(client, "/dashboard/", rounds, **headers)
            rows.append({"jobs": stored, "what": what, "times": times})
            print(f"{stored:>9} jobs, {what}: p50 {harness.percentile(times, 0.5):.1f} ms", flush=True)
    return rows


def report(rows: list[dict], rounds: int, command: str) -> str:
    lines = [
        "## Dashboard with a million jobs stored (PostgreSQL)",
        "",
        f"Command: `{command}`. Machine: {harness.machine()}. Database: PostgreSQL.  ",
        "Jobs and latency records written by SQL over 30 days, the last fifteen minutes at 6 jobs/s (5,400 jobs), "
        "the trend counted in Redis as they would have been. Server time of `GET /dashboard/` in the web process "
        f"(Django's test client, no network), {rounds} requests after a warm-up. Goal (issue 16): ≤ {GOAL_MS} ms "
        "with 1M jobs stored.",
        "",
        "| jobs stored | request | p50 | p95 | max | goal met |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        times = row["times"]
        p95 = harness.percentile(times, 0.95)
        met = "—" if not row["jobs"] else ("yes" if p95 <= GOAL_MS else "no")
        lines.append(
            f"| {row['jobs']:,} | {row['what']} | {harness.percentile(times, 0.5):.1f} ms | {p95:.1f} ms | "
            f"{max(times):.1f} ms | {met} |"
        )
    empty = {row["what"]: harness.percentile(row["times"], 0.5) for row in rows if not row["jobs"]}
    full = {row["what"]: harness.percentile(row["times"], 0.5) for row in rows if row["jobs"]}
    ratios = ", ".join(f"{what}: {full[what] / empty[what]:.2f}x" for what in empty)
    lines += ["", f"p50 with the jobs stored against an empty database, in the same run: {ratios}."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--output", type=Path, default=harness.BENCHMARKS)
    args = parser.parse_args()
    url = os.environ.get("BENCH_DATABASE_URL") or DEFAULT_URL
    os.environ["BENCH_DATABASE_URL"] = url
    harness.configure()
    harness._postgres_recreate(url)
    import django

    django.setup()
    rows = run(args.rounds, args.jobs)
    command = "make bench-dashboard" if args.jobs == 1_000_000 and args.rounds == 50 else " ".join(sys.argv)
    harness.write_section("dashboard", report(rows, args.rounds, command), args.output)


if __name__ == "__main__":
    main()
