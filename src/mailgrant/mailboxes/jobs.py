"""The mailboxes' background work, run by the worker (mailgrant.worker.runtime): every enabled
incoming mailbox fetched on its interval.

Each round claims at most as many due mailboxes as the worker's pool has room for
(common.claims: a lease in claimed_by / claimed_until, renewed by the worker's heartbeat while
the fetch runs), so two workers never fetch one mailbox at once, and hands each fetch to the
pool; the claim ends when the fetch does, however it ends. One that fails, however it fails,
never stops the others. How late a mailbox was taken (its poll lag) goes to
`mailgrant_poll_lag_seconds` and the worker's activity."""

from __future__ import annotations

import functools
import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db.models import DateTimeField, F, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from mailgrant.common.audit import WORKER
from mailgrant.common.claims import claims_release, claims_renew, claims_take
from mailgrant.common.errors import ServiceError
from mailgrant.common.jobs import JobContext
from mailgrant.common.metrics import POLL_LAG
from mailgrant.mailboxes.models import Mailbox
from mailgrant.mailboxes.services.fetch import mailbox_fetch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PollOutcome:
    mailbox: str
    fetched: int = 0
    error: str = ""


@dataclass(frozen=True)
class PollRound:
    """What one round of `mailboxes_poll_due` did: mailboxes claimed, and the largest and
    summed poll lag among them (seconds)."""

    claimed: int = 0
    lag_max: float = 0.0
    lag_sum: float = 0.0

    def __bool__(self) -> bool:
        return self.claimed > 0


NEVER = datetime(1970, 1, 1, tzinfo=UTC)


def lease_seconds() -> int:
    return max(5, int(settings.MAILGRANT_WORKER_LEASE))


# The mailboxes each worker of this process is fetching now, for its heartbeat to renew.
_fetching: dict[str, set[int]] = {}
_fetching_lock = threading.Lock()


def mailboxes_due(*, now: datetime) -> Q:
    return Q(enabled=True, direction=Mailbox.Direction.INCOMING) & (
        Q(next_poll_at__isnull=True) | Q(next_poll_at__lte=now)
    )


def mailboxes_poll_due(ctx: JobContext) -> PollRound:
    """Claim up to `ctx.slots()` due mailboxes, oldest due first, and submit each one's fetch."""
    now = ctx.now
    # Never fetched (no next poll time) counts as due longest: first on every database
    # (PostgreSQL sorts NULL last), so new mailboxes are not starved by a busy fleet.
    due = Mailbox.objects.filter(mailboxes_due(now=now)).annotate(
        due_at=Coalesce("next_poll_at", Value(NEVER, output_field=DateTimeField()))
    )
    ids = claims_take(
        due,
        worker=ctx.worker,
        now=now,
        until=now + timedelta(seconds=lease_seconds()),
        limit=ctx.slots(),
        order_by="due_at",
    )
    if not ids:
        return PollRound()
    claimed = list(
        Mailbox.objects.filter(pk__in=ids)
        .select_related("oauth_client", "grant")
        .order_by(F("next_poll_at").asc(nulls_first=True))
    )
    lags = [
        max(0.0, (now - m.next_poll_at).total_seconds()) if m.next_poll_at else 0.0 for m in claimed
    ]
    with _fetching_lock:
        _fetching.setdefault(ctx.worker, set()).update(ids)
    for mailbox, lag in zip(claimed, lags, strict=True):
        POLL_LAG.observe(lag)
        ctx.submit(functools.partial(_poll, mailbox, ctx.worker), label=f"mailbox {mailbox.pk}")
    lost = set(ids) - {m.pk for m in claimed}  # deleted between the claim and the read
    if lost:
        _forget(ctx.worker, lost)
    return PollRound(claimed=len(claimed), lag_max=max(lags), lag_sum=sum(lags))


def _poll(mailbox: Mailbox, worker: str) -> PollOutcome:
    return mailbox_poll_claimed(mailbox=mailbox, worker=worker)


def mailbox_poll_claimed(*, mailbox: Mailbox, worker: str) -> PollOutcome:
    """Fetch a mailbox `worker` has claimed (its outcome recorded on the mailbox by the
    fetch), then end the claim, whatever happened."""
    # The fetch counts itself in mailgrant_fetches / mailgrant_fetch_seconds (whoever asks
    # for it: the worker, Fetch now, the CLI), so the worker does not count it again.
    log.debug("fetch start mailbox=%s worker=%s at=%.6f", mailbox.pk, worker, time.time())
    try:
        result = mailbox_fetch(mailbox=mailbox, actor=WORKER)  # records outcome, next poll
        return PollOutcome(mailbox.name, fetched=result.fetched)
    except ServiceError as exc:
        log.warning("Mailbox %s: %s", mailbox.name, exc.message)
        return PollOutcome(mailbox.name, error=exc.message)
    except Exception as exc:  # one mailbox's surprise must not stop the others
        log.exception("Mailbox %s failed unexpectedly", mailbox.name)
        Mailbox.objects.filter(pk=mailbox.pk).update(
            last_error=f"unexpected error: {type(exc).__name__}",
            next_poll_at=timezone.now() + timedelta(seconds=max(mailbox.poll_interval, 10)),
        )
        return PollOutcome(mailbox.name, error=type(exc).__name__)
    finally:
        log.debug("fetch end mailbox=%s worker=%s at=%.6f", mailbox.pk, worker, time.time())
        try:
            claims_release(Mailbox, worker=worker, ids=[mailbox.pk])
        finally:
            _forget(worker, {mailbox.pk})


def _forget(worker: str, ids: set[int]) -> None:
    with _fetching_lock:
        held = _fetching.get(worker)
        if held is not None:
            held.difference_update(ids)
            if not held:
                del _fetching[worker]


def mailboxes_leases_renew(*, worker: str, now: datetime) -> int:
    """Renew `worker`'s claims on the mailboxes it is fetching (its heartbeat calls this)."""
    with _fetching_lock:
        ids = list(_fetching.get(worker, ()))
    return claims_renew(
        Mailbox, worker=worker, ids=ids, until=now + timedelta(seconds=lease_seconds())
    )
