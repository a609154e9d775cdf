"""SQLite's write-ahead log copied back into the database by a thread, not by a request.

By default SQLite checkpoints inside the commit that takes the log past 1,000 pages: that
commit's request copies the log into the database and waits for the disk to sync it. Under the
token broker's load (an audit row a call, some 8,000 log pages a second) that was several
stalls a second, each one request's p99 (bench/broker.py). A serving process instead raises
that threshold out of the way on its connections and checkpoints from a daemon thread every
`interval` seconds, PASSIVE: it neither waits for nor blocks readers and writers, and SQLite
reuses the log from its start once it has been copied whole. Should the thread stop, the
raised threshold still bounds the log (about 400 MB). Other processes (the CLI, the poller,
the tests) keep SQLite's default.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.signals import connection_created

logger = logging.getLogger(__name__)

FALLBACK_PAGES = 100_000
_started = threading.Event()


def sqlite_checkpointer_start(*, interval: float = 1.0) -> bool:
    """Start the checkpoint thread of this process when the database is SQLite (once)."""
    if connections[DEFAULT_DB_ALIAS].vendor != "sqlite" or _started.is_set():
        return False
    _started.set()
    connection_created.connect(_raise_threshold, dispatch_uid="mailgrant-sqlite-checkpoint")
    threading.Thread(target=_run, args=(interval,), name="sqlite-checkpoint", daemon=True).start()
    return True


def sqlite_checkpoint() -> tuple[int, int, int]:
    """One PASSIVE checkpoint on this thread's connection: (busy, log pages, copied pages)."""
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute("PRAGMA wal_checkpoint(PASSIVE)")
        busy, log, copied = cursor.fetchone()
    return int(busy), int(log), int(copied)


def _raise_threshold(sender: Any, connection: Any, **kwargs: Any) -> None:
    if connection.vendor == "sqlite" and connection.alias == DEFAULT_DB_ALIAS:
        with connection.cursor() as cursor:
            cursor.execute(f"PRAGMA wal_autocheckpoint={FALLBACK_PAGES}")


def _run(interval: float) -> None:
    while True:
        time.sleep(interval)
        try:
            sqlite_checkpoint()
        except Exception:  # never let a bad moment stop the thread; the threshold is the net
            logger.exception("SQLite checkpoint failed; will retry")
