"""One writing transaction at a time on a SQLite file, across the threads and processes of a node, queued on a
lock instead of SQLite's busy wait.

SQLite lets one transaction write at a time. Another that wants to begin meanwhile gets SQLITE_BUSY, and Python's
busy handler sleeps and tries again: 1, 2, 5, 10, 15, 20, 25 ms and on. In a burst of 24 submissions, each
holding the write lock for about 1 ms, the ones that lost a round slept 10 ms and more while the database was
free (BENCHMARKS.md, web server). Here a writer waits on a thread lock (one writer a process at a time) and then
on an flock of a file beside the database (one process at a time), and each wakes as the one before lets go.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time

# How often a process that waits for another process's writer checks the file lock (the thread lock leaves at
# most one thread per process polling): every 0.5 ms at first, as a burst's writers hold it about 1 ms each;
# then every eighth of the time waited so far, up to 20 ms, so a lock held for a minute (a backup, a stuck
# writer) costs each waiting process about 50 wake-ups a second, not 2000, and delays its writer by at most
# an eighth of its wait.
POLL_S = 0.0005
POLL_MAX_S = 0.02


def poll_interval(waited_s: float) -> float:
    """How long to sleep before checking the file lock again, after waiting waited_s for it."""
    return min(POLL_MAX_S, max(POLL_S, waited_s / 8))


def lock_path(database: str) -> str | None:
    """The lock file of a database file (beside it); None for an in-memory database, which one process owns."""
    name = str(database)
    if not name or name == ":memory:" or name.startswith("file::memory:") or "mode=memory" in name:
        return None
    return name + "-writer.lock"


class WriterLock:
    """The lock of one database file in one process (for_process)."""

    def __init__(self, path: str):
        self.path = path
        self.threads = threading.Lock()
        self.fd: int | None = None

    def acquire(self, timeout_s: float) -> None:
        """Wait up to timeout_s for the lock, then raise sqlite3.OperationalError as SQLite would."""
        give_up = time.monotonic() + timeout_s
        if not self.threads.acquire(timeout=max(0.0, timeout_s)):
            raise sqlite3.OperationalError("database is locked")
        started = time.monotonic()  # the backoff counts the wait for the file lock only, not for this process's threads
        try:
            if self.fd is None:
                self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            while True:
                try:
                    fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return
                except BlockingIOError:
                    now = time.monotonic()
                    if now >= give_up:
                        raise sqlite3.OperationalError("database is locked") from None
                    time.sleep(min(poll_interval(now - started), give_up - now))
        except BaseException:
            self.threads.release()
            raise

    def release(self) -> None:
        try:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        finally:
            self.threads.release()


_locks: dict[str, WriterLock] = {}
_locks_guard = threading.Lock()


def for_process(path: str) -> WriterLock:
    """This process's lock of the file at path."""
    with _locks_guard:
        if path not in _locks:
            _locks[path] = WriterLock(path)
        return _locks[path]


def _forget_after_fork() -> None:
    """A forked child starts with locks of its own: the parent's thread locks may be held by threads the child
    does not have, and the file it inherited shares the parent's flock (closing it keeps that one held)."""
    global _locks_guard
    for lock in _locks.values():
        if lock.fd is not None:
            os.close(lock.fd)
    _locks.clear()
    _locks_guard = threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)
