"""Django's SQLite backend, each transaction begun only once it holds the node's writer lock (writer_lock) and
letting go of it once it has committed, rolled back or closed. The project's transactions begin IMMEDIATE (settings), so
each one writes, and queueing them costs readers nothing: in WAL mode reads take no lock.

Statements outside a transaction (autocommit) do not take it: they still meet SQLite's own busy wait.
"""

from django.db import DatabaseError
from django.db.backends.sqlite3 import base

from edgeportal.sqlite_backend import writer_lock


class DatabaseWrapper(base.DatabaseWrapper):
    _writer_lock: writer_lock.WriterLock | None = None  # held while a transaction is open

    def _start_transaction_under_autocommit(self):
        path = writer_lock.lock_path(self.settings_dict["NAME"])
        if path is None:
            return super()._start_transaction_under_autocommit()
        lock = writer_lock.for_process(path)
        # Django's own OperationalError on a timeout, as SQLite's busy wait gives: the worker's storage waits out
        # a locked database (jobs.sink), the web answers 503.
        with self.wrap_database_errors:
            lock.acquire(float(self.settings_dict["OPTIONS"].get("timeout", 5)))
        self._writer_lock = lock
        try:
            super()._start_transaction_under_autocommit()
        except BaseException:
            self._let_go()
            raise

    def _commit(self):
        try:
            result = super()._commit()
        except DatabaseError:
            # Kept when the database refuses the commit: SQLite keeps the transaction open (a deferred foreign
            # key), and Django's atomic(), which catches exactly DatabaseError, then rolls it back or closes the
            # connection, which let go.
            raise
        except BaseException:
            # Anything else (an interrupt): nothing rolls back, and atomic() turning autocommit on again makes
            # sqlite3 commit by itself, past this method: the lock must not stay held.
            self._let_go()
            raise
        self._let_go()
        return result

    def _rollback(self):
        try:
            return super()._rollback()
        finally:
            self._let_go()

    def _close(self):
        try:
            return super()._close()
        finally:
            self._let_go()

    def _let_go(self) -> None:
        lock, self._writer_lock = self._writer_lock, None
        if lock is not None:
            lock.release()
