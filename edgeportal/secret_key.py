"""The SECRET_KEY a node makes for itself when none is configured: generated once, kept in a private file."""

import os
import tempfile
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured
from django.core.management.utils import get_random_secret_key


def secret_key_read(path: Path) -> str:
    """The key in path (surrounding whitespace dropped); a clear error when it is empty."""
    key = path.read_text().strip()
    if not key:
        raise ImproperlyConfigured(f"The secret key file {path} is empty.")
    return key


def secret_key_load_or_create(path: Path) -> str:
    """The key kept at path; the first call makes a random one and writes it there, readable by its owner only.

    Several processes start at once (the web server's workers, the Celery worker, beat): each writes its
    candidate to a private temporary file and links it into place, which fails when the file exists, so
    exactly one key wins and every process reads that one, never a half-written file.
    """
    try:
        return secret_key_read(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, candidate = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
    try:
        with os.fdopen(descriptor, "w") as file:
            file.write(get_random_secret_key() + "\n")
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(candidate, path)
        except FileExistsError:
            pass  # another process won: read its key
    finally:
        os.unlink(candidate)
    return secret_key_read(path)
