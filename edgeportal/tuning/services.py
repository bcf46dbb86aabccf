"""Saving scheduler settings: checked, audited, stored in the database and published to the workers via Redis."""

from __future__ import annotations

import logging
from dataclasses import asdict

from django.db import transaction
from django.db.models import Max

from edgeportal.jobs.queueing import get_settings_store
from edgeportal.tuning.models import SchedulerOverride, SettingChange
from inference.scheduler import SETTINGS, SettingError, parse_setting

log = logging.getLogger(__name__)


class TuningRejected(Exception):
    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(f"{name}: {message}" for name, message in errors.items()))
        self.errors = errors


@transaction.atomic
def settings_save(*, user, values: dict[str, object]) -> list[SettingChange]:
    """Apply the values that differ from the current ones; all or nothing.

    Redis is written inside the transaction: if it is unreachable the save fails as a whole, rather
    than leave the database saying one thing and the workers running another.
    """
    errors, checked = {}, {}
    for name, raw in values.items():
        try:
            checked[name] = parse_setting(name, raw)
        except SettingError as error:
            errors[name] = error.message
    if errors:
        raise TuningRejected(errors)
    store = get_settings_store()
    current = asdict(store.current())
    changed = {name: value for name, value in checked.items() if current[name] != value}
    if not changed:
        return []
    version = store.update(**changed)
    changes = []
    for name, value in changed.items():
        SchedulerOverride.objects.update_or_create(name=name, defaults={"value": value})
        changes.append(
            SettingChange.objects.create(
                user=user, name=name, old_value=current[name], new_value=value, version=version
            )
        )
    log.info("scheduler settings version %d: %s", version, changed)
    return changes


def settings_republish() -> bool:
    """Put the saved overrides back into Redis if Redis lost them (it keeps nothing on disk)."""
    store = get_settings_store()
    if store.redis.hexists(store.key, "_version"):
        return False
    overrides = {o.name: o.value for o in SchedulerOverride.objects.filter(name__in=SETTINGS)}
    if not overrides:
        return False
    version = SettingChange.objects.aggregate(latest=Max("version"))["latest"] or 1
    store.replace(overrides, version=version)
    log.warning("Redis had lost the scheduler settings: put back version %d", version)
    return True
