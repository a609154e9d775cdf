"""Keeping grants' tokens fresh: a valid access token now, refreshed once however many
callers ask at once; the token broker's audited hand-out."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Sequence
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.utils import timezone

from mailgrant.common import sql
from mailgrant.common.audit import (
    SYSTEM,
    Actor,
    AuditAction,
    AuditTarget,
    audit_record,
    audit_write,
)
from mailgrant.common.errors import NeedsAdmin, PeerFailed, ServiceError
from mailgrant.common.health import Reason, backoff_seconds, reason_of
from mailgrant.common.metrics import REFRESH_SECONDS, REFRESHES
from mailgrant.common.models import audit_insert_sql
from mailgrant.oauth import protocol, schedule
from mailgrant.oauth.broker import grant_cached_token, grant_used, tokens_usable
from mailgrant.oauth.health import (
    reason_is_the_clients,
    reason_stops_refresh,
    refresh_failure_reason,
)
from mailgrant.oauth.models import Grant, OAuthClient
from mailgrant.oauth.protocol import ProviderError, TokenSet
from mailgrant.oauth.selectors import (
    EndpointsMissing,
    grant_get_for_refresh,
    oauth_client_credentials,
    oauth_client_endpoints,
    oauth_client_http,
)

log = logging.getLogger(__name__)

# Transient failures are retried after backoff_seconds(failures, base, cap).
RETRY_BASE_SECONDS = 30.0
RETRY_CAP_SECONDS = 3600.0


def _is_fresh(grant: Grant, tokens: TokenSet | None, min_valid_seconds: float) -> bool:
    return tokens_usable(
        state=grant.state,
        client_enabled=grant.client.is_enabled,
        tokens=tokens,
        min_valid_seconds=min_valid_seconds,
    )


def access_token_for(*, grant: Grant, min_valid_seconds: float = 0) -> TokenSet:
    """A token set whose access token is valid now (for at least `min_valid_seconds` when the
    provider allows), refreshing it when it is near expiry."""
    cached = grant_cached_token(grant_id=grant.pk, min_valid_seconds=min_valid_seconds)
    if cached is not None:
        return cached.tokens
    tokens = _access_token_refreshed(grant_id=grant.pk, min_valid_seconds=min_valid_seconds)[0]
    grant_used(grant_id=grant.pk, tokens=tokens)
    return tokens


def access_token_issue(*, grant_id: int, min_valid_seconds: float = 0, actor: Actor) -> TokenSet:
    """The token broker: `access_token_for` the grant, and a grant.token_issued audit row for
    `actor`, written before the token is handed out."""
    cached = grant_cached_token(grant_id=grant_id, min_valid_seconds=min_valid_seconds)
    if cached is not None:
        tokens, grant_name = cached.tokens, cached.grant_name
    else:
        tokens, grant = _access_token_refreshed(
            grant_id=grant_id, min_valid_seconds=min_valid_seconds
        )
        grant_name = str(grant)
        grant_used(grant_id=grant_id, tokens=tokens)
    audit_write(
        actor=actor,
        action=AuditAction.GRANT_TOKEN_ISSUED,
        target=AuditTarget(type=Grant._meta.label_lower, id=str(grant_id), name=grant_name),
    )
    return tokens


def _access_token_refreshed(*, grant_id: int, min_valid_seconds: float) -> tuple[TokenSet, Grant]:
    """The slow path: the grant read whole, refreshed when needed (once, however many callers
    ask at once), or the reason why no token can be had raised (NeedsAdmin, or PeerFailed
    from the provider)."""
    grant = Grant.objects.select_related("client").get(pk=grant_id)
    tokens = grant.tokens()
    if _is_fresh(grant, tokens, min_valid_seconds):
        return tokens, grant  # type: ignore[return-value]
    try:
        grant = grant_refresh(grant=grant, force=False, min_valid_seconds=min_valid_seconds)
    except ServiceError as exc:
        # A provider outage must not stop a mailbox whose token is still good for a while.
        if (
            exc.transient
            and tokens
            and tokens.expires_at
            and grant.client.is_enabled
            and (tokens.expires_at > timezone.now().timestamp() + 5)
        ):
            log.warning("Using the current token of grant %s: %s", grant.pk, exc.message)
            return tokens, grant
        raise
    return grant.tokens(), grant  # type: ignore[return-value]


def grant_refresh(
    *,
    grant: Grant,
    force: bool = True,
    min_valid_seconds: float = 0,
    actor: Actor = SYSTEM,
    trigger: str = "demand",
    due_at: datetime | None = None,
) -> Grant:
    """Refresh `grant`'s tokens at the provider, once, however many callers ask at once.

    A caller takes the grant's refresh lease (a short conditional update), asks the provider
    with no transaction open, and writes the outcome in a short transaction that ends the
    lease. A caller that finds the lease taken waits for it and reads the grant again: it
    finds the fresh token and does not spend the (rotated) refresh token a second time. A
    lease whose holder died runs out, and the next caller takes it.

    `due_at` is the worker's claim (Grant.next_refresh_at as the claim set it): when the grant
    no longer has it once the lease is taken, another worker or a caller refreshed (or
    rescheduled) the grant meanwhile, and this refresh is skipped. `trigger` (demand, ahead,
    keepalive; "scheduled": ahead or keepalive as the grant's use says) labels the refresh in
    the metrics."""
    lease = refresh_lease_seconds()
    gave_up_at = time.monotonic() + lease + 5
    while True:
        until = grant_refresh_lease_take(grant_id=grant.pk, seconds=lease)
        if until is not None:
            break
        if time.monotonic() > gave_up_at:
            raise PeerFailed(
                f"Another refresh of grant {grant.pk} has not finished: try again.",
                code="refresh_in_progress",
                transient=True,
            )
        time.sleep(LEASE_POLL_SECONDS)
    ended = False  # the lease ended with the outcome's write
    try:
        grant = grant_get_for_refresh(grant_id=grant.pk)
        if due_at is not None and grant.next_refresh_at != due_at:
            return grant
        tokens = grant.tokens()
        if trigger == "scheduled":
            used = tokens is not None and schedule.in_use(
                tokens=tokens, last_used_at=grant.last_used_at, now=timezone.now()
            )
            trigger = "ahead" if used else "keepalive"
        if not force and _is_fresh(grant, tokens, min_valid_seconds):
            return grant
        _check_refreshable(grant, tokens)
        assert tokens is not None and tokens.refresh_token
        started = time.monotonic()
        try:
            token_url = oauth_client_endpoints(client=grant.client).token_url
            log.debug("Refreshing grant %s (%s) at %s", grant.pk, grant.account, token_url)
            new = protocol.refresh(
                http=oauth_client_http(client=grant.client),
                token_url=token_url,
                credentials=oauth_client_credentials(client=grant.client),
                refresh_token=tokens.refresh_token,
            )
        except (ProviderError, EndpointsMissing) as exc:
            with transaction.atomic():
                failure, outcome = _refresh_failed(grant=grant, exc=exc, actor=actor)
            ended = True
            _count(outcome, trigger, started)
            raise failure from None
        with transaction.atomic():
            _refresh_succeeded(grant=grant, tokens=new.after_refresh(tokens), actor=actor)
        ended = True
        _count("ok", trigger, started)
        return grant
    finally:
        if not ended:
            Grant.objects.filter(pk=grant.pk, refreshing_until=until).update(refreshing_until=None)


def _count(outcome: str, trigger: str, started: float) -> None:
    REFRESHES.labels(outcome=outcome, trigger=trigger).inc()
    REFRESH_SECONDS.labels(outcome=outcome).observe(time.monotonic() - started)


def grant_refresh_claimed(*, grant_id: int, due_at: datetime, actor: Actor) -> str:
    """The worker's refresh of a grant it claimed (oauth.jobs.grants_refresh_due): ahead of
    expiry when the grant is in use, else to keep it alive. The outcome (ok, or the
    failure's code) is recorded on the grant by grant_refresh; it is returned for the worker's
    log."""
    try:
        grant_refresh(
            grant=Grant(pk=grant_id), force=True, actor=actor, trigger="scheduled", due_at=due_at
        )
    except Grant.DoesNotExist:
        return "gone"
    except ServiceError as exc:
        return exc.code
    return "ok"


def refresh_lease_seconds() -> float:
    """How long a refresh lease lasts: longer than the slowest token request (connect and
    answer) may take, so that only a dead holder's lease runs out."""
    return 2 * float(settings.MAILGRANT_HTTP_TIMEOUT) + 10


LEASE_POLL_SECONDS = 0.05


def grant_refresh_lease_take(*, grant_id: int, seconds: float) -> datetime | None:
    """The end of the grant's refresh lease, now this caller's; None while another holds it."""
    now = timezone.now()
    until = now + timedelta(seconds=seconds)
    taken = sql.execute(
        _lease_take_sql(), [sql.db_datetime(until), grant_id, sql.db_datetime(now)]
    ).rowcount
    if taken:
        return until
    if not Grant.objects.filter(pk=grant_id).exists():
        raise Grant.DoesNotExist(f"No grant {grant_id}.")
    return None


@functools.cache
def _lease_take_sql() -> str:
    """The lease's conditional UPDATE (refreshing_until set where it is free: empty or past),
    run by every refresh and polled by callers waiting on another's: through the driver
    (common.sql), as the ORM's query building costs many times the statement."""
    meta = Grant._meta
    lease = meta.get_field("refreshing_until").column  # type: ignore[union-attr]
    return (
        f"UPDATE {meta.db_table} SET {lease} = %s "  # noqa: S608
        f"WHERE {meta.pk.column} = %s AND ({lease} IS NULL OR {lease} < %s)"  # type: ignore[union-attr]
    )


@functools.cache
def _grant_update_sql(columns: tuple[str, ...]) -> str:
    meta = Grant._meta
    assignments = ", ".join(f"{column} = %s" for column in columns)
    return f"UPDATE {meta.db_table} SET {assignments} WHERE {meta.pk.column} = %s"  # noqa: S608  # type: ignore[union-attr]


def _grant_write(grant: Grant, names: Sequence[str]) -> None:
    """`save(update_fields=names)` of the refreshed grant as one UPDATE through the driver
    (common.sql), each value prepared by its field as save() would (the token set sealed,
    datetimes as the database stores them); updated_at is set here, as auto_now would."""
    grant.updated_at = timezone.now()
    fields = [Grant._meta.get_field(name) for name in (*names, "updated_at")]
    connection = connections[DEFAULT_DB_ALIAS]
    values = [
        field.get_db_prep_save(getattr(grant, field.attname), connection=connection)  # type: ignore[union-attr]
        for field in fields
    ]
    columns = tuple(str(field.column) for field in fields)  # type: ignore[union-attr]
    sql.execute(_grant_update_sql(columns), [*values, grant.pk])


def _audit_refreshed(*, grant: Grant, actor: Actor) -> None:
    """The grant.refreshed row `audit_record` writes, as one INSERT through the driver in the
    refresh's own transaction (not audit_write: a serving process spools its rows, outside
    any transaction)."""
    values = [
        sql.db_datetime(timezone.now()),
        actor.name[:200],
        actor.user_id,
        str(AuditAction.GRANT_REFRESHED),
        Grant._meta.label_lower,
        str(grant.pk),
        str(grant)[:300],
        "ok",
        "",
    ]
    sql.execute(audit_insert_sql(), values)


def _check_refreshable(grant: Grant, tokens: TokenSet | None) -> None:
    """Raise NeedsAdmin (and record the grant's health, with no refresh scheduled) when the
    grant cannot be refreshed as it stands: nothing reaches the provider then."""
    problem: tuple[str, str, str] | None = None
    if not grant.client.is_enabled:
        problem = (f"Client {grant.client.name} is disabled.", "client_disabled", "client.disabled")
    elif grant.state == Grant.State.REAUTHORIZATION_REQUIRED:
        problem = (
            f"Grant {grant} needs to be validated again: {grant.last_error}",
            "reauthorization_required",
            grant.health_reason
            if grant.health_reason.startswith("refresh.")
            else "refresh.invalid_grant",
        )
    elif grant.state == Grant.State.ERROR and reason_stops_refresh(reason_of(grant.health_reason)):
        problem = (
            f"Grant {grant} cannot be refreshed until its client is fixed: {grant.last_error}",
            "provider_error",
            grant.health_reason,
        )
    elif tokens is None:
        problem = (
            f"Client {grant.client.name} is not authorized yet: press Validate.",
            "not_authorized",
            "grant.not_authorized",
        )
    elif not tokens.refresh_token:
        problem = (
            f"Grant {grant} has no refresh token: validate it again (with offline access).",
            "reauthorization_required",
            "refresh.no_refresh_token",
        )
    if problem is None:
        return
    message, code, reason_code = problem
    reason = reason_of(reason_code)
    now = timezone.now()
    changed = grant.health_set(
        health=reason.health,
        reason=reason.code,
        hint=grant.health_hint if reason.code == grant.health_reason else reason.hint,
        now=now,
    )
    if grant.next_refresh_at is not None or grant.refresh_claimed_by:
        grant.next_refresh_at = None
        grant.refresh_claimed_by = ""
        changed += ["next_refresh_at", "refresh_claimed_by"]
    if changed:
        grant.save(update_fields=changed)
    raise NeedsAdmin(message, code=code)


# What a successful refresh writes, beside the health fields that changed. Not the whole
# row: a caller's last_used_at, written meanwhile, stays as it is.
_REFRESHED_FIELDS = (
    "token_set",
    "expires_at",
    "scope",
    "state",
    "last_refresh_at",
    "refresh_count",
    "last_error",
    "last_error_at",
    "refreshing_until",
    "next_refresh_at",
    "refresh_claimed_by",
)


def _refresh_succeeded(*, grant: Grant, tokens: TokenSet, actor: Actor) -> None:
    now = timezone.now()
    grant.token_set = tokens.to_dict()  # type: ignore[assignment]
    grant.expires_at = tokens.expiry
    grant.scope = tokens.scope or grant.scope
    grant.state = Grant.State.AUTHORIZED
    grant.last_refresh_at = now
    grant.refresh_count += 1
    grant.last_error = ""
    grant.last_error_at = None
    grant.refreshing_until = None
    changed = grant.health_succeeded(now=now)
    grant.next_refresh_at = schedule.next_refresh_at(
        tokens=tokens, last_used_at=grant.last_used_at, now=now
    )
    grant.refresh_claimed_by = ""
    _grant_write(grant, (*_REFRESHED_FIELDS, *changed))
    grant.health_announce()  # written above without save(): its event (grant.recovered) here
    _audit_refreshed(grant=grant, actor=actor)
    log.info("Refreshed grant %s (%s); valid until %s", grant.pk, grant.account, grant.expires_at)


def _refresh_failed(*, grant: Grant, exc: Exception, actor: Actor) -> tuple[ServiceError, str]:
    """Record the failure on the grant (state, health, when to try again) and its audit row;
    the error to raise and the metrics' outcome (refused, failed)."""
    error: ServiceError
    now = timezone.now()
    reason: Reason
    if isinstance(exc, EndpointsMissing):
        reason, hint = reason_of("client.endpoints_missing"), ""
        error = NeedsAdmin(str(exc), code="endpoints_missing")
        state = Grant.State.ERROR
    elif isinstance(exc, ProviderError):
        reason, hint = refresh_failure_reason(provider_id=grant.client.provider, exc=exc)
        words = hint or reason.hint
        if exc.needs_reauthorization or reason.code.startswith("refresh."):
            error = NeedsAdmin(
                f"The provider refused the refresh token ({exc.message}): validate again. {words}",
                code="reauthorization_required",
            )
            state = Grant.State.REAUTHORIZATION_REQUIRED
        else:
            error = PeerFailed(
                f"The refresh failed ({exc.message}). {words}",
                code="provider_unreachable" if exc.transient else "provider_error",
                transient=exc.transient,
            )
            # A passing outage leaves the grant authorized: the next call simply tries again.
            state = Grant.State.AUTHORIZED if exc.transient else Grant.State.ERROR
    else:  # pragma: no cover - defensive
        raise exc
    grant.state = state
    grant.last_error = error.message
    grant.last_error_at = now
    changed = grant.health_failed(reason=reason, hint=hint, now=now)
    if reason_stops_refresh(reason):
        grant.next_refresh_at = None
    else:
        delay = backoff_seconds(
            grant.consecutive_failures, base=RETRY_BASE_SECONDS, cap=RETRY_CAP_SECONDS
        )
        grant.next_refresh_at = now + timedelta(seconds=delay)
    grant.refresh_claimed_by = ""
    grant.refreshing_until = None
    grant.save(
        update_fields=[
            "refreshing_until",
            "state",
            "last_error",
            "last_error_at",
            "updated_at",
            "next_refresh_at",
            "refresh_claimed_by",
            *changed,
        ]
    )
    if reason_is_the_clients(reason):
        _client_failed(client=grant.client, reason=reason, hint=hint, now=now)
    audit_record(
        actor=actor,
        target=grant,
        action=AuditAction.GRANT_REFRESH_FAILED,
        outcome="failed",
        message=error.message,
    )
    log.warning("Refresh of grant %s failed: %s", grant.pk, error.message)
    return error, "failed" if reason.transient else "refused"


def _client_failed(*, client: OAuthClient, reason: Reason, hint: str, now: datetime) -> None:
    """The client's own health shows a refusal that is its fault; an expired secret also
    sets when it expired (at the latest now), for the expiry check to keep."""
    changed = client.health_failed(reason=reason, hint=hint, now=now)
    if reason.code == "client.secret_expired" and (
        client.secret_expires_at is None or client.secret_expires_at > now
    ):
        client.secret_expires_at = now
        changed.append("secret_expires_at")
    client.save(update_fields=[*changed, "updated_at"])
