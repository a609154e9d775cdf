"""OAuth's background work, run by the worker (mailgrant.worker)."""

from __future__ import annotations

import functools
from datetime import timedelta

from mailgrant.common.audit import Actor
from mailgrant.common.claims import claims_take
from mailgrant.common.jobs import JobContext
from mailgrant.oauth.models import Grant, OAuthClient
from mailgrant.oauth.services.authorization import authorization_purge_expired
from mailgrant.oauth.services.clients import oauth_clients_check_secret_expiry
from mailgrant.oauth.services.tokens import grant_refresh_claimed, refresh_lease_seconds


def authorizations_purge_due() -> int:
    """Started authorizations a day past their expiry are deleted (kept that long for the API
    and the command line to read their outcome)."""
    return authorization_purge_expired()


def grants_refresh_due(ctx: JobContext) -> int:
    """Claim the grants whose refresh is due (Grant.next_refresh_at: ahead of expiry while in
    use, a keep-alive while idle, a retry after a passing failure; oauth.schedule) and refresh
    each in the worker's pool; how many were claimed.

    The claim moves next_refresh_at past the refresh's own lease, so no other worker finds the
    grant due while this one works on it, and a worker that dies leaves it due again once that
    has passed. The refresh itself is skipped when the grant no longer carries this claim (it
    was refreshed meanwhile): exactly one refresh per due, however many workers run."""
    slots = ctx.slots()
    if slots <= 0:
        return 0
    until = ctx.now + timedelta(seconds=refresh_lease_seconds() + 30)
    due = Grant.objects.filter(
        next_refresh_at__lte=ctx.now,
        state=Grant.State.AUTHORIZED,
        client__status=OAuthClient.Status.ENABLED,
    )
    ids = claims_take(
        due,
        worker=ctx.worker,
        now=ctx.now,
        until=until,
        limit=slots,
        order_by="next_refresh_at",
        by_field="refresh_claimed_by",
        until_field="next_refresh_at",
    )
    actor = Actor(name=f"worker:{ctx.worker}")
    for pk in ids:
        ctx.submit(
            functools.partial(grant_refresh_claimed, grant_id=pk, due_at=until, actor=actor),
            label=f"grant {pk}",
        )
    return len(ids)


def clients_check_secret_expiry(ctx: JobContext) -> int:
    """Keep the clients' secret-expiry healths current (warning 30 days before, failing once
    passed): one query, and a write only where a health changes."""
    return oauth_clients_check_secret_expiry(now=ctx.now)
