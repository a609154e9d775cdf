"""IMAP IDLE for the worker: every mailbox with push = idle watched by exactly one worker, all
of a worker's watches on one asyncio loop in one thread (mailboxes.protocol.idle).

The worker's runtime calls `start` once, `beat` on every round and `stop` at the end. A beat
takes and renews the IDLE leases (`idle_by` / `idle_until`, through common.claims: a worker
that dies loses its watches when their leases run out, and another worker takes them), and
starts or stops watchers to match. New mail only makes the mailbox due now (a conditional
update of next_poll_at) and wakes the worker: the fetch itself goes through the normal claimed
poll, so IDLE has polling's guarantees (no loss, never two fetches of a mailbox at once). An
arrival the fetch may have missed (it was already under way) makes the mailbox due again
until a fetch has started after it. A connection that starts failing, or is back after
failures, also makes it due: that poll records the mailbox's health. The poll on the mailbox's
own interval goes on beside IDLE, a safety net for whatever a watch missed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import close_old_connections
from django.db.models import Q, QuerySet
from django.utils import timezone

from mailgrant.common.claims import claims_release, claims_take
from mailgrant.common.errors import ServiceError
from mailgrant.mailboxes.models import Mailbox
from mailgrant.mailboxes.protocol.idle import IdleEvent, IdleSettings, IdleTarget, IdleWatcher
from mailgrant.mailboxes.protocol.transport import AuthRefused, TokenLogin
from mailgrant.mailboxes.services.login import mailbox_endpoint, mailbox_login
from mailgrant.oauth.services.tokens import access_token_for, grant_refresh

log = logging.getLogger(__name__)

BY, UNTIL = "idle_by", "idle_until"
# How long a watch refused for good (a wrong password, a grant to authorize again) rests.
REFUSED_REST_SECONDS = 600.0
# Threads the watches' database and token work runs in, off the event loop.
DATABASE_THREADS = 4


def idle_settings() -> IdleSettings:
    return IdleSettings(
        renew_seconds=float(settings.MAILGRANT_IDLE_RENEW),
        token_margin_seconds=float(settings.MAILGRANT_IDLE_TOKEN_MARGIN),
    )


def mailboxes_idle() -> QuerySet[Mailbox]:
    """The mailboxes to keep an IDLE connection for."""
    return Mailbox.objects.filter(
        enabled=True,
        push=Mailbox.Push.IDLE,
        protocol=Mailbox.Protocol.IMAP,
        direction=Mailbox.Direction.INCOMING,
    )


@dataclass
class _Watch:
    watcher: IdleWatcher
    task: Future[None]
    version: tuple[Any, ...]


@dataclass
class IdleService:
    """The IDLE watches of one worker. `settings`, `lease_seconds` and `capacity` default to
    MAILGRANT_IDLE_* (tests and the benchmark pass their own)."""

    settings: IdleSettings = field(default_factory=idle_settings)
    lease_seconds: float = field(default_factory=lambda: float(settings.MAILGRANT_IDLE_LEASE))
    capacity: int = field(default_factory=lambda: int(settings.MAILGRANT_IDLE_MAX))

    def __post_init__(self) -> None:
        self.worker = ""
        self._wake: Callable[[], None] = lambda: None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._watches: dict[int, _Watch] = {}
        # Leased but not watched: the login cannot succeed (a grant to authorize again).
        self._blocked: dict[int, tuple[Any, ...]] = {}
        # Leased, and refused by the server or the provider for good: not tried again with
        # IDLE until the mailbox changes or REFUSED_REST_SECONDS pass (the poll, on its
        # interval, says what is wrong meanwhile). Written on the loop, read by beat.
        self._refused: set[int] = set()
        self._resting: dict[int, tuple[float, tuple[Any, ...]]] = {}
        self._arrivals: dict[int, datetime] = {}
        # Arrivals not yet written (on the loop only), and the task writing them.
        self._due: set[int] = set()
        self._marker: asyncio.Task[None] | None = None
        self._lock = threading.Lock()

    # --- the runtime's protocol ------------------------------------------------------------

    def start(self, *, worker: str, wake: Callable[[], None]) -> None:
        self.worker, self._wake = worker, wake
        loop = asyncio.new_event_loop()
        loop.set_default_executor(
            ThreadPoolExecutor(max_workers=DATABASE_THREADS, thread_name_prefix="idle-db")
        )
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="idle", daemon=True)
        self._thread.start()

    def beat(self, *, now: datetime) -> dict[str, Any]:
        """Renew this worker's IDLE leases and take free ones; start and stop watchers to
        match; make due again what arrived and has not been fetched since. Its activity."""
        until = now + timedelta(seconds=self.lease_seconds)
        with self._lock:
            refused, self._refused = self._refused, set()
        for pk in refused:
            watch = self._watches.pop(pk, None)
            if watch is not None:
                self._resting[pk] = (time.monotonic() + REFUSED_REST_SECONDS, watch.version)
        ours = set(self._watches) | set(self._blocked) | set(self._resting)
        mine = mailboxes_idle().filter(pk__in=ours, idle_by=self.worker)
        mine.update(idle_until=until)
        kept = set(mine.filter(idle_until=until).values_list("pk", flat=True))
        for pk in ours - kept:  # lost its lease, disabled, or no longer IDLE
            self._unwatch(pk)
            self._resting.pop(pk, None)
        claims_release(Mailbox, worker=self.worker, ids=ours - kept, by_field=BY, until_field=UNTIL)
        room = self.capacity - len(kept)
        taken = claims_take(
            mailboxes_idle().exclude(pk__in=kept),
            worker=self.worker,
            now=now,
            until=until,
            limit=room,
            order_by="pk",
            by_field=BY,
            until_field=UNTIL,
        )
        held = kept | set(taken)
        versions = {
            pk: (updated, grant)
            for pk, updated, grant in Mailbox.objects.filter(pk__in=held).values_list(
                "pk", "updated_at", "grant_id"
            )
        }
        for pk in held:
            watch = self._watches.get(pk)
            if watch is not None and watch.version == versions.get(pk):
                continue
            resting = self._resting.get(pk)
            if resting and resting[1] == versions.get(pk) and time.monotonic() < resting[0]:
                continue
            self._resting.pop(pk, None)
            self._unwatch(pk)  # new, changed, or blocked: (re)start it
            self._watch(pk, versions.get(pk, ()))
        self._arrivals_check(now=now)
        stats = [w.watcher.stats for w in self._watches.values()]
        return {
            "idle_watched": len(self._watches),
            "idle_connected": sum(1 for s in stats if s.connected),
            "idle_failing": sum(1 for s in stats if s.consecutive_failures),
            "idle_blocked": len(self._blocked),
            "idle_refused": len(self._resting),
        }

    def stop(self) -> None:
        ids = set(self._watches) | set(self._blocked) | set(self._resting)
        for pk in list(self._watches):
            self._unwatch(pk)
        self._blocked.clear()
        self._resting.clear()
        loop, self._loop = self._loop, None
        if loop is not None:
            with contextlib.suppress(Exception):  # stopping goes on whatever a watch did
                asyncio.run_coroutine_threadsafe(_drain(), loop).result(timeout=30)
            loop.call_soon_threadsafe(loop.stop)
            if self._thread is not None:
                self._thread.join(timeout=30)
            loop.close()
        if self.worker:
            claims_release(Mailbox, worker=self.worker, ids=ids, by_field=BY, until_field=UNTIL)

    # --- watches ---------------------------------------------------------------------------

    def watching(self) -> dict[int, IdleWatcher]:
        return {pk: w.watcher for pk, w in self._watches.items()}

    def _watch(self, pk: int, version: tuple[Any, ...]) -> None:
        assert self._loop is not None, "start() first"
        mailbox = Mailbox.objects.select_related("oauth_client", "grant").filter(pk=pk).first()
        if mailbox is None:
            return
        try:
            target = self._target(mailbox)
        except ServiceError as exc:
            if pk not in self._blocked:
                log.info("Mailbox %s: not watched with IDLE: %s", pk, exc.message)
            self._blocked[pk] = version
            return
        self._blocked.pop(pk, None)
        watcher = IdleWatcher(target, self._on_event, settings=self.settings)
        task = asyncio.run_coroutine_threadsafe(watcher.run(), self._loop)
        self._watches[pk] = _Watch(watcher=watcher, task=task, version=version)

    def _unwatch(self, pk: int) -> None:
        self._blocked.pop(pk, None)
        watch = self._watches.pop(pk, None)
        if watch is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(watch.watcher.stop)

    def _target(self, mailbox: Mailbox) -> IdleTarget:
        """What the watcher needs: a login that fails here when it cannot succeed; a token
        taken through the grant (refreshed when near expiry) whose expiry the watcher asks."""
        login, grant = mailbox_login(mailbox=mailbox)
        expiry: dict[str, float | None] = {"at": None}
        if isinstance(login, TokenLogin) and grant is not None:
            margin = self.settings.token_margin_seconds

            def get_token() -> str:
                try:
                    tokens = access_token_for(grant=grant, min_valid_seconds=2 * margin)
                    left = (tokens.expires_at or float("inf")) - time.time()
                    # Half its lifetime at most: a token shorter than the margins would
                    # otherwise be refreshed at every connection.
                    valid_for = min(2 * margin, (tokens.lifetime or float("inf")) / 2)
                    if left < valid_for:
                        # Good enough for a short call, not for a session that must leave
                        # before it expires (Exchange ends it then): a fresh one.
                        tokens = grant_refresh(grant=grant, force=True).tokens() or tokens
                finally:
                    close_old_connections()
                expiry["at"] = tokens.expires_at
                return tokens.access_token

            login = TokenLogin(login.username, login.mechanism, get_token)
        return IdleTarget(
            key=mailbox.pk,
            endpoint=mailbox_endpoint(mailbox=mailbox),
            login=login,
            folder=mailbox.folder or "INBOX",
            token_expires_at=lambda: expiry["at"],
        )

    async def _on_event(self, event: IdleEvent) -> None:
        """Runs on the loop and returns at once: the watcher goes on reading while the
        arrival is written (all arrivals since the last write in one UPDATE)."""
        if event.kind in ("changed", "exists"):
            self._fetch_soon(event.key)
        elif event.kind == "error":
            log.info("IDLE on mailbox %s: %s", event.key, event.message)
            error = event.error
            refused = isinstance(error, AuthRefused | ServiceError) and not error.transient
            watch = self._watches.get(event.key)
            if watch is not None and watch.watcher.stats.consecutive_failures == 1:
                # A poll now, once per streak of failures, records the mailbox's health
                # (with its reason and backoff): not only at the next poll, maybe an hour away.
                self._fetch_soon(event.key)
            if refused and watch is not None:
                # the same login again would be refused again: not every few minutes
                watch.watcher.stop()
                with self._lock:
                    self._refused.add(event.key)

    # --- arrivals --------------------------------------------------------------------------

    def _fetch_soon(self, key: int) -> None:
        """On the loop: the mailbox made due now, with the others since the last write."""
        self._due.add(key)
        if self._marker is None or self._marker.done():
            self._marker = asyncio.get_running_loop().create_task(self._mark_arrivals())

    async def _mark_arrivals(self) -> None:
        while self._due:
            keys, self._due = self._due, set()
            try:
                await asyncio.to_thread(self._arrived, keys)
            except Exception:  # the next beat makes them due again (they are remembered)
                log.exception("IDLE: marking %d mailbox(es) due failed", len(keys))

    def _arrived(self, keys: set[int]) -> None:
        """New mail (or a folder changed while nobody watched): due now, and the worker
        woken. Runs in a database thread, never on the loop."""
        now = timezone.now()
        with self._lock:
            for pk in keys:
                self._arrivals[pk] = now  # the latest: a fetch must begin after it
        try:
            _make_due(keys, now)
        finally:
            close_old_connections()
        self._wake()

    def _arrivals_check(self, *, now: datetime) -> None:
        with self._lock:
            arrivals = dict(self._arrivals)
        if not arrivals:
            return
        rows = Mailbox.objects.filter(pk__in=list(arrivals)).values_list(
            "pk", "last_fetch_at", "next_poll_at"
        )
        done, again = [], []
        for pk, fetched, due in rows:
            if fetched is not None and fetched >= arrivals[pk]:
                done.append(pk)  # a fetch began after the arrival: it saw the message
            elif due is not None and due > now:
                again.append(pk)  # a fetch under way then has pushed the next poll out
        with self._lock:
            for pk in done:
                if self._arrivals.get(pk) == arrivals[pk]:
                    del self._arrivals[pk]
            for pk in set(arrivals) - {r[0] for r in rows}:
                self._arrivals.pop(pk, None)  # deleted
        if again:
            _make_due(set(again), now)
            self._wake()


async def _drain() -> None:
    """Cancel every watch and let each close its connection; then the database threads end."""
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.get_running_loop().shutdown_default_executor()


def _make_due(keys: set[int], now: datetime) -> None:
    Mailbox.objects.filter(pk__in=keys, enabled=True).filter(
        Q(next_poll_at__isnull=True) | Q(next_poll_at__gt=now)
    ).update(next_poll_at=now)
