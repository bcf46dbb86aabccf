"""SQLite's writers queue on the node's writer lock (edgeportal.sqlite_backend) instead of SQLite's busy wait: one
transaction at a time across threads and processes, each let go when it commits, rolls back or closes."""

import fcntl
import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.db import connection, transaction

from edgeportal.sqlite_backend import writer_lock
from edgeportal.sqlite_backend.writer_lock import WriterLock, lock_path

ROOT = Path(__file__).resolve().parent.parent

# A process that takes the lock at `path`, says so, and holds it until its stdin closes.
HOLDER = """
import sys
from edgeportal.sqlite_backend.writer_lock import WriterLock
lock = WriterLock(sys.argv[1])
lock.acquire(5)
print("held", flush=True)
sys.stdin.read()
"""


@pytest.fixture
def held_elsewhere(tmp_path):
    """The lock of a database file, held by another process until the test ends."""
    path = str(tmp_path / "db.sqlite3-writer.lock")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, path], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline().strip() == "held"
    yield path, holder
    holder.stdin.close()
    holder.wait(10)


def free_for_another_process(path: str) -> bool:
    """Whether another open of the file could take its flock now."""
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def test_a_lock_held_by_another_process_is_waited_for_and_taken_once_let_go(held_elsewhere):
    path, holder = held_elsewhere
    lock = WriterLock(path)
    taken = threading.Event()

    def take():
        lock.acquire(10)
        taken.set()

    waiter = threading.Thread(target=take)
    waiter.start()
    assert not taken.wait(0.3)  # the other process still writes
    holder.stdin.close()
    assert taken.wait(5)
    waiter.join()
    assert not free_for_another_process(path)
    lock.release()
    assert free_for_another_process(path)


def test_waiting_longer_than_the_timeout_fails_as_sqlite_would(held_elsewhere):
    path, _ = held_elsewhere
    lock = WriterLock(path)
    with pytest.raises(sqlite3.OperationalError, match="database is locked"):
        lock.acquire(0.1)
    assert not lock.threads.locked()  # a failed wait leaves nothing held in this process


def test_a_long_wait_checks_the_lock_less_and_less_often(held_elsewhere, monkeypatch):
    """A lock held for long (a backup, a stuck writer) must not keep every waiting process polling 2000 times a
    second: the checks thin out to one every POLL_MAX_S."""
    path, _ = held_elsewhere
    sleeps = []
    real_sleep = time.sleep
    monkeypatch.setattr(writer_lock.time, "sleep", lambda s: (sleeps.append(s), real_sleep(s)))
    with pytest.raises(sqlite3.OperationalError, match="database is locked"):
        WriterLock(path).acquire(1.0)
    assert sleeps[0] == writer_lock.POLL_S and max(sleeps) == writer_lock.POLL_MAX_S
    assert len(sleeps) < 150  # every 0.5 ms for a second: about 2000
    assert sleeps == sorted(sleeps[:-1]) + sleeps[-1:]  # never faster again, the last cut short by the timeout


def test_the_poll_interval_is_an_eighth_of_the_wait_between_its_bounds():
    assert writer_lock.poll_interval(0.0) == writer_lock.POLL_S  # a burst: each writer holds it about 1 ms
    assert writer_lock.poll_interval(0.08) == pytest.approx(0.01)
    assert writer_lock.poll_interval(60.0) == writer_lock.POLL_MAX_S


def test_threads_of_one_process_take_turns(tmp_path):
    lock = WriterLock(str(tmp_path / "db.sqlite3-writer.lock"))
    lock.acquire(1)
    second = threading.Event()
    waiter = threading.Thread(target=lambda: (lock.acquire(10), second.set()))
    waiter.start()
    assert not second.wait(0.3)
    lock.release()
    assert second.wait(5)
    waiter.join()
    lock.release()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork only")
def test_a_forked_child_waits_on_locks_of_its_own(tmp_path):
    """A parent's thread holds the lock at the fork: the child neither inherits that thread lock (it would wait
    forever) nor the flock (it would write beside the parent)."""
    path = str(tmp_path / "db.sqlite3-writer.lock")
    parent_lock = writer_lock.for_process(path)
    parent_lock.acquire(1)
    pid = os.fork()
    if pid == 0:  # the child: it must wait for the parent, then get the lock
        code = 1
        try:
            child_lock = writer_lock.for_process(path)
            try:
                child_lock.acquire(0.1)
                code = 2  # took a lock the parent holds
            except sqlite3.OperationalError:
                child_lock.acquire(10)
                code = 0
        finally:
            os._exit(code)
    time.sleep(0.3)
    parent_lock.release()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_an_in_memory_database_has_no_lock_file():
    assert lock_path(":memory:") is None
    assert lock_path("file::memory:?cache=shared") is None
    assert lock_path("/var/lib/edgeportal/db.sqlite3") == "/var/lib/edgeportal/db.sqlite3-writer.lock"


sqlite_only = pytest.mark.skipif("connection.vendor != 'sqlite'", reason="SQLite's backend")


@sqlite_only
def test_the_node_runs_sqlite_with_the_writer_lock():
    assert connection.settings_dict["ENGINE"] == "edgeportal.sqlite_backend"


@sqlite_only
def test_a_transaction_holds_the_lock_until_it_commits_or_rolls_back(transactional_db):
    from django.contrib.auth.models import Group

    path = lock_path(connection.settings_dict["NAME"])
    with transaction.atomic():
        Group.objects.create(name="press-3")
        assert not free_for_another_process(path)
        with transaction.atomic():  # a savepoint: no second wait for the lock this connection holds
            Group.objects.create(name="press-4")
    assert free_for_another_process(path)

    with pytest.raises(RuntimeError), transaction.atomic():
        Group.objects.create(name="press-5")
        raise RuntimeError("rolled back")
    assert free_for_another_process(path)
    assert sorted(Group.objects.values_list("name", flat=True)) == ["press-3", "press-4"]


@sqlite_only
def test_a_transaction_that_waits_too_long_fails_with_djangos_database_error(transactional_db, held_elsewhere):
    """The worker's storage waits out a locked database and the web answers 503 only for Django's error."""
    from django.db import OperationalError
    from django.db.backends.sqlite3.base import DatabaseWrapper as Sqlite

    from edgeportal.sqlite_backend.base import DatabaseWrapper

    path = held_elsewhere[0].removesuffix("-writer.lock")
    wrapper = DatabaseWrapper({**connection.settings_dict, "NAME": path, "OPTIONS": {"timeout": 0.1}}, alias="locked")
    try:
        with pytest.raises(OperationalError, match="database is locked"):
            wrapper.set_autocommit(False, force_begin_transaction_with_broken_autocommit=True)  # what atomic() does
        assert wrapper._writer_lock is None
    finally:
        Sqlite.close(wrapper)


@sqlite_only
def test_a_commit_that_fails_keeps_the_lock_until_the_transaction_is_rolled_back(transactional_db, monkeypatch):
    """SQLite keeps a transaction open when its COMMIT fails (here a deferred foreign key): letting go before the
    rollback would let another writer begin beside it."""
    from django.contrib.auth.models import Permission
    from django.db import IntegrityError

    path = lock_path(connection.settings_dict["NAME"])
    free_at_rollback = []
    rollback = connection._rollback

    def watched_rollback():
        free_at_rollback.append(free_for_another_process(path))
        return rollback()

    monkeypatch.setattr(connection, "_rollback", watched_rollback)
    with pytest.raises(IntegrityError), transaction.atomic():
        Permission.objects.create(name="ghost", codename="ghost", content_type_id=987654)  # checked at commit
    assert free_at_rollback == [False]
    assert free_for_another_process(path) and connection._writer_lock is None
    assert not Permission.objects.filter(codename="ghost").exists()


@sqlite_only
def test_a_commit_interrupted_by_anything_but_a_database_error_lets_go(transactional_db, monkeypatch):
    """Nothing rolls back after an interrupt inside COMMIT: a lock kept then would hold up every writer."""
    from django.contrib.auth.models import Group
    from django.db.backends.sqlite3.base import DatabaseWrapper as Sqlite

    def interrupted(self):
        raise KeyboardInterrupt

    path = lock_path(connection.settings_dict["NAME"])
    monkeypatch.setattr(Sqlite, "_commit", interrupted)
    try:
        with pytest.raises(KeyboardInterrupt), transaction.atomic():
            Group.objects.create(name="press-6")
        assert free_for_another_process(path) and connection._writer_lock is None
    finally:
        monkeypatch.undo()
        connection.close()
