"""The ASGI application `make run` serves (gunicorn with uvicorn workers): long-lived streams hold no thread."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "edgeportal.settings")
application = get_asgi_application()
