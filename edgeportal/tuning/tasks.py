"""Celery tasks of the tuning app: thin shells around services."""

from celery import shared_task

from edgeportal.tuning.services import settings_republish


@shared_task
def republish_settings() -> bool:
    return settings_republish()
