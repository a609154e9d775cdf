"""The hot path's audit rows appended to a spool file, moved into the table by a thread.

The token broker writes an audit row on every call, and an INSERT with its own commit was the
largest part of a call's cost (bench/broker.py: ratio 0.42 with it, 0.64 without). In a serving
process the row is instead appended to the process's spool file with one write(2) before the
answer leaves: from then on it outlives the process, as a committed SQLite transaction in WAL
mode with synchronous=NORMAL does (neither outlives a power loss before the disk syncs). A
thread moves the spool into the table several times a second, recording in the same transaction
how far it got (AuditSpoolMark), so a crash between the two neither loses nor repeats a row. A
process holds an flock on its own files for life: the files of a process that died are free,
and the next drain of any serving process takes them over.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import logging
import os
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection, transaction

from mailgrant.common import sql
from mailgrant.common.models import AuditSpoolMark, audit_insert_sql

logger = logging.getLogger(__name__)

ROTATE_BYTES = 16 * 1024 * 1024
SUFFIX = ".jsonl"


class AuditSpool:
    """This process's spool: `append` from any thread, `drain` from one."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Whoever can write here can forge audit rows: tightened even when it already exists.
        folder.chmod(0o700)
        self.folder = folder
        self._lock = threading.Lock()
        self._prefix = f"{os.getpid()}-{time.time_ns()}"
        self._sequence = 0
        self._fd, self._name = self._open_next()
        self._size = 0
        self._closed = False

    def _open_next(self) -> tuple[int, str]:
        self._sequence += 1
        name = f"{self._prefix}-{self._sequence}{SUFFIX}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND
        fd = os.open(self.folder / name, flags, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # ours while we live
        return fd, name

    def append(self, values: list[Any]) -> bool:
        """Spool one row (`at` as an ISO string first); False once the spool is closed."""
        line = (json.dumps(values, separators=(",", ":")) + "\n").encode()
        with self._lock:
            if self._closed:
                return False
            os.write(self._fd, line)  # one write: in the file before the caller answers
            self._size += len(line)
        return True

    def drain(self, *, final: bool = False) -> int:
        """Move the spooled rows into the table: this process's files (retiring the current
        one when it has grown, or on `final`) and those left by processes that died."""
        retired: tuple[int, str] | None = None
        with self._lock:
            if final or self._size >= ROTATE_BYTES:
                retired = (self._fd, self._name)
                self._closed = final
                if not final:
                    self._fd, self._name = self._open_next()
                    self._size = 0
            current = self._name
        moved = 0
        if retired:
            moved += _ingest(self.folder / retired[1], finished=True)
            os.close(retired[0])
        if not final:
            moved += _ingest(self.folder / current, finished=False)
        for path in sorted(self.folder.glob(f"*{SUFFIX}")):
            if path.name not in (current, retired[1] if retired else None):
                moved += _take_over(path)
        return moved


def _take_over(path: Path) -> int:
    """Drain the file of a process that is gone (its lock is free), then remove it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return 0  # another process took it over meanwhile
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return 0  # its process is alive, or another drain holds it
        if os.fstat(fd).st_nlink == 0:
            return 0  # drained and removed by another process before we locked it
        return _ingest(path, finished=True)
    finally:
        os.close(fd)


def _ingest(path: Path, *, finished: bool) -> int:
    """Rows past the file's mark into the table, with the new mark, in one transaction. A
    `finished` file is then removed (and its mark, which only a removed file can leave)."""
    name = path.name
    mark = AuditSpoolMark.objects.filter(file=name).values_list("offset", flat=True).first()
    offset = mark or 0
    with open(path, "rb") as spool:
        spool.seek(offset)
        data = spool.read()
    end = data.rfind(b"\n") + 1  # complete lines only: a row being written waits
    rows = []
    for line in data[:end].splitlines():
        try:
            at, *rest = json.loads(line)
            rows.append([sql.db_datetime(datetime.fromisoformat(at)), *rest])
        except (ValueError, TypeError):
            logger.warning("Audit spool %s: unreadable line (%d bytes) skipped", name, len(line))
    if end:
        with transaction.atomic(), connection.cursor() as cursor:
            if rows:
                cursor.executemany(audit_insert_sql(), rows)
            AuditSpoolMark.objects.update_or_create(file=name, defaults={"offset": offset + end})
    if finished:
        if len(data) > end:
            torn = len(data) - end
            logger.warning("Audit spool %s: a torn last line (%d bytes) skipped", name, torn)
        path.unlink(missing_ok=True)
        AuditSpoolMark.objects.filter(file=name).delete()
    return len(rows)


_spool: AuditSpool | None = None


def audit_spool() -> AuditSpool | None:
    """This process's spool when it has one (a serving process), else None."""
    return _spool


def audit_spool_start(*, interval: float = 0.2) -> AuditSpool:
    """Spool this process's hot audit rows, drained every `interval` seconds and at exit."""
    global _spool
    if _spool is None:
        _spool = AuditSpool(Path(settings.MAILGRANT_HOME) / "audit-spool")
        threading.Thread(
            target=_drain_forever, args=(_spool, interval), name="audit-spool", daemon=True
        ).start()
        atexit.register(_drain_at_exit, _spool)
    return _spool


def _drain_forever(spool: AuditSpool, interval: float) -> None:
    while True:
        try:
            spool.drain()
        except Exception:  # a locked or unreachable database: the rows wait in the file
            logger.exception("Moving the audit spool into the table failed; will retry")
        time.sleep(interval)


def _drain_at_exit(spool: AuditSpool) -> None:
    with contextlib.suppress(Exception):  # what is left waits for the next serving process
        spool.drain(final=True)
