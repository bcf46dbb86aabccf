"""Saving scheduler settings: checked, audited and stored in the database, then published to the workers
via Redis."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import redis
from django.db import transaction

from edgeportal.core.queueing import get_settings_store
from edgeportal.tuning.models import SchedulerOverride, SettingChange
from edgeportal.tuning.selectors import saved_overrides, saved_settings
from inference.settings import SettingError, parse_setting

log = logging.getLogger(__name__)


class TuningRejected(Exception):
    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(f"{name}: {message}" for name, message in errors.items()))
        self.errors = errors


@dataclass
class SettingsSaved:
    changes: list[SettingChange]
    version: int
    published: bool | None = None  # reached Redis; None until the save commits (or when nothing changed)


def settings_save(*, user, values: dict[str, object]) -> SettingsSaved:
    """Apply the values that differ from the saved ones; all or nothing.

    The database comes first: the overrides and an audit row per change commit together, and only then
    are they published to Redis for the workers. A database error leaves Redis (and the workers) as they
    were. If Redis is unreachable, the save still stands (published is False) and the beat task
    settings_republish publishes it once Redis answers.
    """
    errors, checked = {}, {}
    for name, raw in values.items():
        try:
            checked[name] = parse_setting(name, raw)
        except SettingError as error:
            errors[name] = error.message
    if errors:
        raise TuningRejected(errors)
    published_version = _published_version()  # before the transaction: no lock held while Redis answers
    with transaction.atomic():
        current, version = saved_settings()
        current = asdict(current)
        changed = {name: value for name, value in checked.items() if current[name] != value}
        if not changed:
            return SettingsSaved([], version)
        version = max(version, published_version) + 1
        saved = SettingsSaved([], version)
        for name, value in changed.items():
            SchedulerOverride.objects.update_or_create(name=name, defaults={"value": value})
            saved.changes.append(
                SettingChange.objects.create(
                    user=user, name=name, old_value=current[name], new_value=value, version=version
                )
            )
        transaction.on_commit(lambda: setattr(saved, "published", _publish()))
    log.info("scheduler settings version %d saved: %s", version, changed)
    return saved


def _published_version() -> int:
    """The version in Redis, if it answers: a new save numbers past it, so it is never taken for older."""
    try:
        return get_settings_store().current_with_version()[1]
    except redis.RedisError:
        return 0


def _publish() -> bool:
    """Publish the saved settings; False (logged) if Redis is unreachable."""
    try:
        get_settings_store().publish(*saved_overrides())
    except redis.RedisError:
        log.warning("Redis is unreachable: saved scheduler settings reach the workers once it is back")
        return False
    return True


def settings_republish() -> bool:
    """The beat task's step: publish the saved settings if Redis holds an older version of them (it lost
    them in a restart without persistence, or was unreachable when they were saved). True if it did."""
    overrides, version = saved_overrides()
    if not version or not get_settings_store().publish(overrides, version):
        return False
    log.warning("Redis held older scheduler settings than the database: published version %d", version)
    return True
