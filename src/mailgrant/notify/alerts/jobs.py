"""The alerts' background work, run by the worker (worker.loop JOBS)."""

from __future__ import annotations

import functools
from datetime import timedelta

from mailgrant.common.audit import Actor
from mailgrant.common.claims import claims_take
from mailgrant.common.jobs import JobContext
from mailgrant.notify.alerts.incidents import Reconciled, incidents_reconcile
from mailgrant.notify.alerts.notices import notice_send_claimed
from mailgrant.notify.models import Notice

# A notice's claim: longer than one send may take (Django's and the mailboxes' SMTP timeouts).
NOTICE_LEASE = timedelta(seconds=180)


def incidents_check(ctx: JobContext) -> Reconciled:
    """Open, remind of and resolve incidents to match the objects' healths now."""
    return incidents_reconcile(now=ctx.now, actor=Actor(name=f"worker:{ctx.worker}"))


def notices_send_due(ctx: JobContext) -> int:
    """Claim the email notices due (new, or a retry's time come) and send each in the pool;
    how many were claimed."""
    ids = claims_take(
        Notice.objects.filter(state=Notice.State.PENDING, next_attempt_at__lte=ctx.now),
        worker=ctx.worker,
        now=ctx.now,
        until=ctx.now + NOTICE_LEASE,
        limit=ctx.slots(),
        order_by="next_attempt_at",
    )
    actor = Actor(name=f"worker:{ctx.worker}")
    for pk in ids:
        ctx.submit(
            functools.partial(
                notice_send_claimed, notice_id=pk, worker=ctx.worker, actor=actor, now=ctx.now
            ),
            label=f"notice {pk}",
        )
    return len(ids)
