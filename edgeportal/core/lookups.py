"""Rows that every submission reads and admins rarely change (a source by its token, the blocked patterns), kept
in each web process between requests instead of queried each time (about 0.7 ms of CPU per submission).

An entry is valid while the Redis counter it was read under stands, and for EDGE_LOOKUP_TTL_S at most. A change to
such a row raises the counter once it is committed (lookups_changed, from the apps' signals), so every process
reads the new row on its next request: a disabled source is refused at once. Without Redis, lookups read the
database (and the submission itself then fails with its 503).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Hashable, Iterator
from contextvars import ContextVar
from typing import TypeVar

import redis
from django.conf import settings
from django.db import transaction

from edgeportal.core.queueing import web_store

log = logging.getLogger(__name__)

MAX_ENTRIES = 1024  # keys are known tokens and fixed names; a bound all the same

T = TypeVar("T")
_entries: dict[tuple, tuple[str, float, object]] = {}
# The version a submission already read with its settings (lookups_version_known): its lookups ask Redis no more.
_known_version: ContextVar[str | None] = ContextVar("known_lookups_version", default=None)


@contextlib.contextmanager
def lookups_version_known(version: str) -> Iterator[None]:
    token = _known_version.set(version)
    try:
        yield
    finally:
        _known_version.reset(token)


def cached_lookup(key: Hashable, read: Callable[[], T], *, keep: Callable[[T], bool] = lambda value: True) -> T:
    """read()'s value, from this process' entry while it is current; a value that keep() refuses (a token that
    matched no source) is not kept, so unknown tokens never fill the table. EDGE_LOOKUP_TTL_S bounds how stale
    an entry can be where a change could not be counted (Redis down at that moment, or flushed back to a version
    seen before); 0 reads every time."""
    ttl_s = settings.EDGE_LOOKUP_TTL_S
    if not ttl_s:
        return read()
    version = _known_version.get()
    if version is None:
        try:
            version = web_store().lookups_version()
        except redis.RedisError:
            return read()
    full_key = (settings.EDGE_REDIS_PREFIX, key)  # each installation (and each test) its own entries
    entry = _entries.get(full_key)
    now = time.monotonic()
    if entry is not None and entry[0] == version and now - entry[1] < ttl_s:
        return entry[2]
    value = read()
    if keep(value):
        if len(_entries) >= MAX_ENTRIES:
            _entries.clear()
        _entries[full_key] = (version, now, value)
    return value


def lookups_changed(**_signal) -> None:
    """A cached row changed (a signal receiver too): this process re-reads at once, the others once the change
    is committed (counted then, or another process could keep the row as it was before the commit)."""
    _entries.clear()
    transaction.on_commit(_count_change)


def _count_change() -> None:
    _entries.clear()
    try:
        web_store().lookups_changed()
    except redis.RedisError as error:
        log.warning("a source or blocked pattern changed but Redis could not say so (%s): other web processes "
                    "keep their copy for up to %d s", error, settings.EDGE_LOOKUP_TTL_S)  # fmt: skip
