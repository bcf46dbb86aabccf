"""Django's SQLite backend with its writers queued on a lock (edgeportal.sqlite_backend.base)."""
