"""A mailbox's health after a login, fetch, send or Test connection: ok again on success, one
more failure with its reason and hint otherwise, and when the worker tries next. Written by
the service that met the outcome, in the transaction of its other fields."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings

from mailgrant.common.health import Health, backoff_seconds, reason_of
from mailgrant.mailboxes.health import Failure
from mailgrant.mailboxes.models import Mailbox
from mailgrant.mailboxes.selectors import mailbox_grant
from mailgrant.oauth.models import Grant

HEALTH_FIELDS = ("health", "health_reason", "health_hint", "health_since", "consecutive_failures")
# The shortest first wait after a transient failure, for a mailbox polled more often than this.
BACKOFF_BASE_SECONDS = 30.0
MIN_INTERVAL_SECONDS = 10


def backoff_cap_seconds() -> float:
    return float(settings.MAILGRANT_MAIL_BACKOFF_CAP)


def mailbox_interval(*, mailbox: Mailbox) -> float:
    return float(max(mailbox.poll_interval, MIN_INTERVAL_SECONDS))


def mailbox_retry_delay(*, mailbox: Mailbox, failure: Failure) -> float:
    """Seconds until the next attempt after `failure` (the mailbox's consecutive_failures
    already counting it): transient failures back off exponentially with jitter up to the cap,
    never sooner than the interval; the others, and a mailbox waiting for an administrator,
    wait for the interval."""
    interval = mailbox_interval(mailbox=mailbox)
    if not failure.transient:
        return interval
    wait = backoff_seconds(
        mailbox.consecutive_failures,
        base=max(interval, BACKOFF_BASE_SECONDS),
        cap=max(backoff_cap_seconds(), interval),
    )
    return max(interval, wait)


def mailbox_health_apply(
    *, mailbox: Mailbox, now: datetime, failure: Failure | None
) -> dict[str, Any]:
    """Move `mailbox` (its health fields read again from the database first: another process
    may have counted a failure since it was loaded) to the outcome; the changed values, for
    one UPDATE with the caller's own fields."""
    current = Mailbox.objects.filter(pk=mailbox.pk).values(*HEALTH_FIELDS).first()
    if current:
        mailbox.health_load(current)
    if failure is None:
        changed = mailbox.health_succeeded(now=now)
    else:
        hint = _grant_hint(mailbox) if failure.reason.code in GRANT_REASONS else ""
        changed = mailbox.health_failed(reason=failure.reason, hint=hint or failure.hint, now=now)
    return {name: getattr(mailbox, name) for name in changed}


# A failure that is the grant's: the grant's own hint (its provider's words, e.g. MFA now
# required, a Testing-status app's 7-day tokens) says more than the mailbox's.
GRANT_REASONS = ("grant.needs_reauthorization", "grant.refresh_failed")


def _grant_hint(mailbox: Mailbox) -> str:
    grant = mailbox_grant(mailbox=mailbox)
    if grant is None:
        return ""
    hint = Grant.objects.filter(pk=grant.pk).values_list("health_hint", flat=True).first()
    return f"{hint} For this mailbox: press Authorize on it." if hint else ""


def mailbox_health_disabled(*, mailbox: Mailbox, now: datetime) -> list[str]:
    """Disabled on purpose (the mailbox, by its enabled box): not a failure to count."""
    reason = reason_of("mailbox.disabled")
    return mailbox.health_set(health=Health.DISABLED, reason=reason.code, hint=reason.hint, now=now)


def mailbox_due_after(*, mailbox: Mailbox, now: datetime, failure: Failure | None) -> datetime:
    if failure is None:
        return now + timedelta(seconds=mailbox_interval(mailbox=mailbox))
    return now + timedelta(seconds=mailbox_retry_delay(mailbox=mailbox, failure=failure))


def mailbox_health_record(
    *, mailbox: Mailbox, now: datetime, failure: Failure | None, error: str = "", due: bool = False
) -> None:
    """A send's or a Test connection's outcome on the mailbox's health (and its last error;
    `due`: an incoming mailbox that works again is fetched at once, not after its backoff).
    Called inside the caller's transaction."""
    fields = mailbox_health_apply(mailbox=mailbox, now=now, failure=failure)
    fields["last_error"] = error
    if failure is None:
        fields["last_success_at"] = now
        if due and mailbox.direction == Mailbox.Direction.INCOMING:
            fields["next_poll_at"] = now
    Mailbox.objects.filter(pk=mailbox.pk).update(**fields)
    for key, value in fields.items():
        setattr(mailbox, key, value)
    mailbox.health_announce()
