"""EdgePortal: the Django project (settings, urls, Celery app) and its web apps."""

from edgeportal.celery import app as celery_app

__all__ = ["celery_app"]
