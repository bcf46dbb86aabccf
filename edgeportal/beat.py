"""Celery beat that runs the periodic tasks in its own process, so they run even when no worker does."""

from __future__ import annotations

import logging
import threading

from celery.beat import PersistentScheduler

log = logging.getLogger(__name__)


class InProcessScheduler(PersistentScheduler):
    """Runs each due task in beat's own process instead of sending it to a worker's queue.

    The periodic tasks keep the database and Redis in step (the lost-job sweep, the settings
    republish, retention): they must run when no worker does, which is when the sweep has the most
    to do. Sent to a queue, they would wait there for a worker instead. So `celery -A edgeportal beat`
    alone is enough. Never a worker's `--beat`: Celery forks that beat from the worker, whose SQLite files
    are open, and every connection the fork opens then fails (edgeportal.serving.beat_command). The tasks
    are short (a sweep is a few queries), and beat runs one at a time.

    Each task runs in a thread of its own, with its own database connection, closed at its end.
    """

    def apply_async(self, entry, producer=None, advance=True, **kwargs):
        entry = self.reserve(entry) if advance else entry
        task = self.app.tasks.get(entry.task)
        if task is None:
            log.error("periodic task %s is not registered; skipped", entry.task)
            return None
        outcome = []

        def run() -> None:
            from django.db import connections  # Django is set up once beat's app is loaded

            try:
                outcome.append(task.apply(args=entry.args, kwargs=entry.kwargs, throw=True))
            except Exception:
                log.exception("periodic task %s failed", entry.task)
            finally:
                connections.close_all()

        thread = threading.Thread(target=run, name=f"beat {entry.name}")
        thread.start()
        thread.join()
        return outcome[0] if outcome else None
