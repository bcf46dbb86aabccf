"""Reads for the tuning page: the saved settings, what each worker applied, and the audit list."""

from django.conf import settings
from django.db.models import Max

from edgeportal.core.labels import lanes_label, state_label, why_label
from edgeportal.core.queueing import get_queue, pools_known
from edgeportal.tuning.models import SchedulerOverride, SettingChange
from inference.settings import SETTINGS, SchedulerSettings
from inference.store.queue import WORKER_ALIVE_S


def saved_overrides() -> tuple[dict[str, int], int]:
    """The overrides the database holds, and the version of the latest save (0: never saved)."""
    overrides = dict(SchedulerOverride.objects.filter(name__in=SETTINGS).values_list("name", "value"))
    version = SettingChange.objects.aggregate(latest=Max("version"))["latest"] or 0
    return overrides, version


def saved_settings() -> tuple[SchedulerSettings, int]:
    """The settings as saved: the environment defaults with the database's overrides, and their version.
    The source of truth, whether or not Redis (and so the workers) has them yet."""
    overrides, version = saved_overrides()
    return settings.EDGE_SCHEDULER.overridden({name: str(value) for name, value in overrides.items()}), version


def workers_applied(*, version: int) -> list[dict]:
    """Live workers, with the settings version they picked up and the window they use now, and why."""
    now = get_queue().now()  # heartbeats are stamped on Redis' clock
    rows = []
    for worker in (worker for pool in pools_known() for worker in get_queue(pool).workers()):
        if now - float(worker["heartbeat_at"]) > WORKER_ALIVE_S:
            continue
        applied = int(worker.get("settings_version") or -1)
        rows.append({
            **worker, "applied": applied, "current": applied >= version,
            "lanes_label": lanes_label(worker.get("lanes", "")),
            "state_label": state_label(worker.get("state", "")),
            "window_why": why_label(worker.get("window_why", ""), worker.get("window_reason", "")),
        })  # fmt: skip
    return rows


def setting_changes(*, limit: int = 50):
    return SettingChange.objects.select_related("user")[:limit]
