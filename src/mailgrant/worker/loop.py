"""What the worker runs: every app's jobs (each a function of a common.jobs.JobContext), the
lease renewals its heartbeat makes, the long-lived services beside the rounds; and `run_once`
for `mailgrant worker --once`.

Each job claims its own rows through the database, so any number of workers share the work;
each runs on its own, so one that fails, however it fails, never stops the others."""

from __future__ import annotations

import inspect
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from django.utils import timezone

from mailgrant.common.events import events_purge_expired
from mailgrant.common.jobs import InlineContext, JobContext
from mailgrant.directory.jobs import ldap_directories_sync_due
from mailgrant.mailboxes.idle import IdleService
from mailgrant.mailboxes.jobs import mailboxes_leases_renew, mailboxes_poll_due
from mailgrant.notify.alerts.jobs import incidents_check, notices_send_due
from mailgrant.notify.jobs import deliveries_leases_renew, deliveries_send_due, events_fan_out
from mailgrant.oauth.jobs import (
    authorizations_purge_due,
    clients_check_secret_expiry,
    grants_refresh_due,
)
from mailgrant.worker.runtime import (
    BackgroundService,
    Job,
    LeaseRenewal,
    WorkerRuntime,
    worker_name,
)

log = logging.getLogger(__name__)


def at_most_every(seconds: float, job: Job) -> Job:
    """`job`, run by each worker at most once every `seconds`: rounds come as often as work
    ends, and a sweep over every row (or a purge, a write) is not needed that often."""
    last: dict[str, float] = {}

    def throttled(ctx: JobContext) -> Any:
        now = time.monotonic()
        if ctx.worker in last and now - last[ctx.worker] < seconds:
            return None
        last[ctx.worker] = now
        return job(ctx)

    throttled.__name__ = job.__name__
    return throttled


def authorizations_purge(ctx: JobContext) -> int:
    return authorizations_purge_due()


def events_purge(ctx: JobContext) -> int:
    return events_purge_expired(now=ctx.now)


# Refreshes first: a round's free slots go to a token about to expire before a late poll.
JOBS: tuple[Job, ...] = (
    grants_refresh_due,
    mailboxes_poll_due,
    ldap_directories_sync_due,
    # The outbox fanned out first, so the deliveries it makes go out in the same round.
    events_fan_out,
    deliveries_send_due,
    at_most_every(60, authorizations_purge),
    at_most_every(60, clients_check_secret_expiry),
    at_most_every(600, events_purge),
    at_most_every(15, incidents_check),
    notices_send_due,
)
RENEWALS: tuple[LeaseRenewal, ...] = (mailboxes_leases_renew, deliveries_leases_renew)
# Long-lived services beside the rounds: IMAP IDLE watches, each mailbox leased to one worker.
SERVICES: tuple[Callable[[], BackgroundService], ...] = (IdleService,)


def _as_job(job: Callable[..., Any]) -> Job:
    """A job of the context contract as it is; one that takes nothing, called without it."""
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if any(p.kind in positional for p in inspect.signature(job).parameters.values()):
        return job

    def adapted(ctx: JobContext) -> Any:
        return job()

    adapted.__name__ = job.__name__
    return adapted


def run_once(
    *, jobs: Sequence[Callable[..., Any]] = JOBS, worker: str | None = None
) -> dict[str, Any]:
    """Each job once, in order, its submitted work run at once: a job's result by its name
    (the outcomes of the work it submitted, when it submitted any), or the exception that
    ended it."""
    results: dict[str, Any] = {}
    worker = worker or worker_name(started=timezone.now())  # its own claims, its own name
    for job in map(_as_job, jobs):
        ctx = InlineContext(worker=worker, now=timezone.now())
        try:
            result = job(ctx)
        except Exception as exc:
            log.exception("%s failed; it runs again on the next round", job.__name__)
            results[job.__name__] = exc
            continue
        results[job.__name__] = ctx.results if ctx.results else result
    return results


def runtime_build(
    *,
    jobs: Sequence[Callable[..., Any]] = JOBS,
    concurrency: int | None = None,
    tick: float = 5.0,
) -> WorkerRuntime:
    return WorkerRuntime(
        jobs=[_as_job(job) for job in jobs],
        services=[make() for make in SERVICES],
        renewals=RENEWALS,
        concurrency=concurrency,
        tick=tick,
    )


def run(
    stop: threading.Event, *, tick: float = 5.0, jobs: Sequence[Callable[..., Any]] = JOBS
) -> None:
    """Run a worker until `stop` is set."""
    runtime = runtime_build(jobs=jobs, tick=tick)

    def watch() -> None:
        stop.wait()
        runtime.stop()

    threading.Thread(target=watch, daemon=True).start()
    runtime.run()
