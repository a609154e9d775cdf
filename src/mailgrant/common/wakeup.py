"""Waking the workers at once when something became due (a new or enabled mailbox, a "Fetch
now"), instead of at their next round.

`wakeup_notify(topic)` runs when the current transaction commits (so a worker woken by it
sees the change): on PostgreSQL a `pg_notify` that every listening worker on any machine
receives (`wakeup_listen`, on a connection of its own); on SQLite, which has no such thing and
is one machine's, a datagram to each worker's socket in MAILGRANT_HOME/wakeup (the worker that
`mailgrant serve` runs beside the web server, or any `mailgrant worker` on that home). The
runtimes of this process are woken directly. A lost wake-up costs at most one round's delay,
never work."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection, transaction

log = logging.getLogger(__name__)

CHANNEL = "mailgrant_wakeup"

_local: list[Callable[[str], None]] = []
_local_lock = threading.Lock()


def wakeup_notify(topic: str) -> None:
    """Wake the workers about `topic` (e.g. "mailboxes") once the transaction commits."""
    transaction.on_commit(lambda: _send(topic))


def _send(topic: str) -> None:
    if connection.vendor == "postgresql":
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_notify(%s, %s)", [CHANNEL, topic])
        except Exception:  # the change is committed; a worker finds it on its next round
            log.warning("Waking the workers about %s failed", topic, exc_info=True)
    else:
        _send_datagrams(topic)
    with _local_lock:
        callbacks = list(_local)
    for callback in callbacks:
        callback(topic)


def wakeup_subscribe(callback: Callable[[str], None]) -> Callable[[], None]:
    """Call `callback(topic)` on every wake-up sent from this process; returns the
    unsubscribe."""
    with _local_lock:
        _local.append(callback)

    def unsubscribe() -> None:
        with _local_lock:
            if callback in _local:
                _local.remove(callback)

    return unsubscribe


def wakeup_listen(
    *, stop: threading.Event, callback: Callable[[str], None], retry: float = 5.0
) -> None:
    """Until `stop` is set: LISTEN on a dedicated autocommit connection (not Django's, which
    a thread may close at any time) and call `callback(topic)` for each notification, from
    any process. Reconnects after `retry` seconds when the connection drops. PostgreSQL only;
    returns at once on another database."""
    if connection.vendor != "postgresql":
        return
    import psycopg  # only on PostgreSQL

    params: dict[str, Any] = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    params.pop("prepare_threshold", None)
    while not stop.is_set():
        try:
            with psycopg.connect(**params, autocommit=True) as listener:
                listener.execute(f"LISTEN {CHANNEL}")
                callback("")  # anything notified while not listening is found by this round
                while not stop.is_set():
                    for notice in listener.notifies(timeout=1.0):  # then look at `stop`
                        callback(notice.payload)
        except Exception:
            if stop.is_set():
                return
            log.warning("Listening for wake-ups failed; retrying", exc_info=True)
            stop.wait(retry)


def _sockets() -> Path:
    return Path(settings.MAILGRANT_HOME) / "wakeup"


def _send_datagrams(topic: str) -> None:
    folder = _sockets()
    if not folder.is_dir():
        return
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
        sender.setblocking(False)
        for path in folder.glob("*.sock"):
            try:
                sender.sendto(topic.encode(), str(path))
            except (ConnectionRefusedError, FileNotFoundError):
                path.unlink(missing_ok=True)  # its worker is gone
            except OSError:  # its queue is full: it is awake already
                pass


def wakeup_listen_local(*, stop: threading.Event, callback: Callable[[str], None]) -> None:
    """Until `stop` is set: receive the datagrams of `_send_datagrams` on this process's
    socket and call `callback(topic)` for each. Where the socket cannot be made (a home whose
    path is too long for one), wake-ups from elsewhere wait for the next round."""
    folder = _sockets()
    path = folder / f"{os.getpid()}-{threading.get_ident()}.sock"  # one per runtime
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        path.unlink(missing_ok=True)  # left by a process of the same pid that died
        receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        receiver.bind(str(path))
    except OSError:
        log.warning("No wake-up socket at %s: other processes' wake-ups wait for a round", path)
        return
    receiver.settimeout(1.0)  # then look at `stop`
    try:
        while not stop.is_set():
            try:
                data = receiver.recv(256)
            except TimeoutError:
                continue
            callback(data.decode(errors="replace"))
    finally:
        receiver.close()
        with contextlib.suppress(OSError):
            path.unlink()
