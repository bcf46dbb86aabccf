"""The ASGI application `make run` serves (gunicorn with uvicorn workers): long-lived streams hold no thread.
Request bodies are limited before Django reads them (edgeportal.body_limit)."""

import os

from django.conf import settings
from django.core.asgi import get_asgi_application

from edgeportal.body_limit import BodyLimit

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "edgeportal.settings")
application = BodyLimit(get_asgi_application(), settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
