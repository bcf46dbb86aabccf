"""Reads for the tuning page: what each worker applied, and the audit list."""

import time

from edgeportal.jobs.queueing import get_queue
from edgeportal.tuning.models import SettingChange
from inference.queue import WORKER_ALIVE_S


def workers_applied(*, version: int) -> list[dict]:
    """Live workers, with the settings version they picked up and the window they use now, and why."""
    now = time.time()
    rows = []
    for worker in get_queue().workers():
        if now - float(worker["heartbeat_at"]) > WORKER_ALIVE_S:
            continue
        applied = int(worker.get("settings_version") or -1)
        rows.append({**worker, "applied": applied, "current": applied >= version})
    return rows


def setting_changes(*, limit: int = 50):
    return SettingChange.objects.select_related("user")[:limit]
