"""The worker runtime: one process's share of the background work.

It registers a `Worker` row and beats (a heartbeat thread renewing the leases of what it is
working on, and recording its activity), runs a round of every job every `tick` seconds, or at
once when woken (a wake-up from this process or, on PostgreSQL, LISTEN/NOTIFY from any), and
runs the work the jobs submit in a bounded pool: a job claims at most `slots()` items, so the
pool never queues more than it can start. Long-lived services (IMAP IDLE) run beside the
rounds, beat with the heartbeat and stop with the runtime.

Any number of runtimes on any number of machines share the work: each job claims its items
through the database (common.claims), and a runtime that dies loses its claims when their
lease runs out, since nobody renews them."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, is_dataclass
from datetime import datetime
from typing import Any, Protocol

from django.conf import settings
from django.db import close_old_connections, connections
from django.utils import timezone

from mailgrant.common.jobs import JobContext
from mailgrant.common.wakeup import wakeup_listen, wakeup_listen_local, wakeup_subscribe
from mailgrant.worker.models import Worker

log = logging.getLogger(__name__)

Job = Callable[[JobContext], Any]
# Renew, as of `now`, the leases `worker` holds on what it is working on; how many it holds.
LeaseRenewal = Callable[..., int]


class BackgroundService(Protocol):
    """Something the worker keeps running beside the rounds (e.g. IMAP IDLE connections)."""

    def start(self, *, worker: str, wake: Callable[[], None]) -> None:
        """Begin; `wake()` asks the runtime for a round at once."""

    def beat(self, *, now: datetime) -> dict[str, Any]:
        """Renew its own leases as of `now`; what it is doing, for the worker's activity."""

    def stop(self) -> None:
        """End, within a few seconds (what it abandons is crash-safe)."""


def worker_name(*, started: datetime) -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{started:%Y%m%dT%H%M%S.%f}"


@dataclass
class _Context:
    """The JobContext a round's jobs get from the runtime."""

    runtime: WorkerRuntime
    now: datetime

    @property
    def worker(self) -> str:
        return self.runtime.name

    def slots(self) -> int:
        return self.runtime.slots()

    def submit(self, work: Callable[[], Any], *, label: str) -> None:
        self.runtime.submit(work, label=label)


class WorkerRuntime:
    def __init__(
        self,
        *,
        jobs: Sequence[Job],
        services: Sequence[BackgroundService] = (),
        renewals: Sequence[LeaseRenewal] = (),
        concurrency: int | None = None,
        tick: float = 5.0,
        beat: float | None = None,
        stop_timeout: float = 10.0,
    ) -> None:
        self.jobs = tuple(jobs)
        self.services = tuple(services)
        self.renewals = tuple(renewals)
        self.concurrency = max(1, concurrency or int(settings.MAILGRANT_WORKER_CONCURRENCY))
        self.tick = tick
        lease = max(5, int(settings.MAILGRANT_WORKER_LEASE))
        # Several beats a lease: one missed beat (a slow database) loses no claim.
        self.beat_every = beat or min(5.0, lease / 4)
        self.stop_timeout = stop_timeout
        self.started_at = timezone.now()
        self.name = worker_name(started=self.started_at)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._running: dict[int, tuple[str, float]] = {}  # id -> (label, monotonic start)
        self._next_id = 0
        self._counts: Counter[str] = Counter()  # "done", "failed", "rounds"
        self._peak = 0
        # The last round submitted work, so more may be due than it had room for: every
        # item that ends asks for another round, until a round finds nothing to submit.
        self._hungry = False
        self._submitted = 0  # in the current round
        self._last: dict[str, Any] = {}  # each job's last round, for the activity
        self._pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="work")
        self._threads: list[threading.Thread] = []

    # --- the pool -------------------------------------------------------------------------

    def slots(self) -> int:
        with self._lock:
            return max(0, self.concurrency - len(self._running))

    def submit(self, work: Callable[[], Any], *, label: str) -> None:
        with self._lock:
            self._next_id += 1
            key = self._next_id
            self._running[key] = (label, time.monotonic())
            self._peak = max(self._peak, len(self._running))
            self._submitted += 1
        self._pool.submit(self._run_item, key, work, label)

    def _run_item(self, key: int, work: Callable[[], Any], label: str) -> None:
        outcome = "failed"
        try:
            close_old_connections()
            work()
            outcome = "done"
        except Exception:
            log.exception("%s failed", label)
        finally:
            close_old_connections()
            with self._lock:
                self._running.pop(key, None)
                self._counts[outcome] += 1
                wake = self._hungry
            if wake:
                self.wake()

    def running(self) -> list[str]:
        with self._lock:
            return [label for label, _ in self._running.values()]

    # --- rounds -----------------------------------------------------------------------------

    def wake(self, topic: str = "") -> None:
        self._wake.set()

    def run_round(self) -> dict[str, Any]:
        """Each job once, on its own: one that fails never stops the others."""
        with self._lock:
            self._submitted = 0
        ctx = _Context(runtime=self, now=timezone.now())
        results: dict[str, Any] = {}
        for job in self.jobs:
            try:
                results[job.__name__] = job(ctx)
            except Exception as exc:
                log.exception("%s failed; it runs again on the next round", job.__name__)
                results[job.__name__] = exc
        with self._lock:
            self._counts["rounds"] += 1
            self._hungry = self._submitted > 0
            again = self._hungry and len(self._running) < self.concurrency
        if again:  # room left (or made while it ran): look again at once
            self.wake()
        with self._lock:
            for name, result in results.items():
                # A round that found nothing to do keeps the job's last busy summary (how late
                # its last polls were taken), which is what the activity is read for.
                if result or isinstance(result, Exception) or name not in self._last:
                    self._last[name] = _summary(result)
        close_old_connections()  # a connection the database dropped is not kept between rounds
        return results

    def run(self) -> None:
        """Register, start the heartbeat, the wake-up listener and the services, run rounds
        until `stop()`; then end within `stop_timeout` and mark the row stopped."""
        self._register()
        unsubscribe = wakeup_subscribe(self.wake)
        self._spawn(self._heartbeat, "heartbeat")
        if connections["default"].vendor == "postgresql":
            self._spawn(lambda: wakeup_listen(stop=self._stop, callback=self.wake), "listen")
        else:
            self._spawn(lambda: wakeup_listen_local(stop=self._stop, callback=self.wake), "listen")
        for service in self.services:
            try:
                service.start(worker=self.name, wake=self.wake)
            except Exception:
                log.exception("%s did not start", type(service).__name__)
        try:
            while not self._stop.is_set():
                self._wake.clear()
                self.run_round()
                self._wake.wait(self.tick)
                # Wake-ups in a burst (fetches ending together) make one round, not many.
                self._stop.wait(0.01)
        finally:
            unsubscribe()
            self._shutdown()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _shutdown(self) -> None:
        for service in self.services:
            try:
                service.stop()
            except Exception:
                log.exception("%s did not stop cleanly", type(service).__name__)
        # Running work gets `stop_timeout` to finish; what is left is abandoned (a fetch is
        # crash-safe: what it stored stays, the rest comes on the next fetch) and its claims
        # run out with their lease.
        self._pool.shutdown(wait=False, cancel_futures=True)
        deadline = time.monotonic() + self.stop_timeout
        while self.running() and time.monotonic() < deadline:
            time.sleep(0.05)
        left = self.running()
        if left:
            log.warning("Stopping with %d item(s) abandoned: %s", len(left), ", ".join(left))
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()) + 1)
        try:
            now = timezone.now()
            Worker.objects.filter(name=self.name).update(
                beat_at=now, stopped_at=now, activity=self.activity()
            )
        except Exception:
            log.exception("Marking worker %s stopped failed", self.name)
        finally:
            close_old_connections()

    # --- the heartbeat ----------------------------------------------------------------------

    def _register(self) -> None:
        Worker.objects.create(
            name=self.name,
            hostname=socket.gethostname(),
            pid=os.getpid(),
            started_at=self.started_at,
            beat_at=self.started_at,
            concurrency=self.concurrency,
            activity=self.activity(),
        )

    def activity(self, services: dict[str, Any] | None = None) -> dict[str, Any]:
        with self._lock:
            now = time.monotonic()
            running: list[dict[str, Any]] = [
                {"label": label, "seconds": round(now - since, 1)}
                for label, since in self._running.values()
            ]
            running.sort(key=lambda item: -item["seconds"])
            return {
                "running": running[:50],
                "running_count": len(running),
                "peak": self._peak,
                "counts": dict(self._counts),
                "jobs": dict(self._last),
                "services": services or {},
            }

    def beat_once(self) -> None:
        now = timezone.now()
        for renew in self.renewals:
            try:
                renew(worker=self.name, now=now)
            except Exception:
                log.exception("Renewing leases (%s) failed", getattr(renew, "__name__", renew))
        services: dict[str, Any] = {}
        for service in self.services:
            try:
                services[type(service).__name__] = service.beat(now=now)
            except Exception:
                log.exception("%s failed its beat", type(service).__name__)
        Worker.objects.filter(name=self.name).update(beat_at=now, activity=self.activity(services))

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.beat_every):
            try:
                self.beat_once()
            except Exception:  # the database may be back at the next beat
                log.exception("Worker %s: heartbeat failed", self.name)
            finally:
                close_old_connections()
        connections.close_all()


def _summary(result: Any) -> Any:
    """A job's result as it goes in the activity: small and JSON."""
    if isinstance(result, Exception):
        return {"error": type(result).__name__}
    if is_dataclass(result) and not isinstance(result, type):
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in asdict(result).items()}
    if isinstance(result, (list, tuple)):
        return {"items": len(result)}
    if isinstance(result, (int, float, str, bool)) or result is None:
        return result
    return str(result)[:200]
