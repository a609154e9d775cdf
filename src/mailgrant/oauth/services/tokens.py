"""Keeping grants' tokens fresh: a valid access token now, refreshed once however many
callers ask at once; the token broker's audited hand-out."""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from mailgrant.common.audit import (
    SYSTEM,
    Actor,
    AuditAction,
    AuditTarget,
    audit_record,
    audit_write,
)
from mailgrant.common.errors import NeedsAdmin, PeerFailed, ServiceError
from mailgrant.oauth import protocol
from mailgrant.oauth.broker import grant_cached_token, tokens_usable
from mailgrant.oauth.models import Grant
from mailgrant.oauth.protocol import ProviderError, TokenSet
from mailgrant.oauth.selectors import (
    EndpointsMissing,
    oauth_client_credentials,
    oauth_client_endpoints,
    oauth_client_http,
)
from mailgrant.providers import get_provider

log = logging.getLogger(__name__)


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
    return _access_token_refreshed(grant_id=grant.pk, min_valid_seconds=min_valid_seconds)[0]


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
    *, grant: Grant, force: bool = True, min_valid_seconds: float = 0, actor: Actor = SYSTEM
) -> Grant:
    """Refresh `grant`'s tokens at the provider, once, however many callers ask at once.

    A caller takes the grant's refresh lease (a short conditional update), asks the provider
    with no transaction open, and writes the outcome in a short transaction that ends the
    lease. A caller that finds the lease taken waits for it and reads the grant again: it
    finds the fresh token and does not spend the (rotated) refresh token a second time. A
    lease whose holder died runs out, and the next caller takes it."""
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
    try:
        grant = Grant.objects.select_related("client").get(pk=grant.pk)
        tokens = grant.tokens()
        if not force and _is_fresh(grant, tokens, min_valid_seconds):
            return grant
        _check_refreshable(grant, tokens)
        assert tokens is not None and tokens.refresh_token
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
                failure = _refresh_failed(grant=grant, exc=exc, actor=actor)
            raise failure from None
        with transaction.atomic():
            _refresh_succeeded(grant=grant, tokens=new.after_refresh(tokens), actor=actor)
        return grant
    finally:
        Grant.objects.filter(pk=grant.pk, refreshing_until=until).update(refreshing_until=None)


def refresh_lease_seconds() -> float:
    """How long a refresh lease lasts: longer than the slowest token request (connect and
    answer) may take, so that only a dead holder's lease runs out."""
    return 2 * float(settings.MAILGRANT_HTTP_TIMEOUT) + 10


LEASE_POLL_SECONDS = 0.05


def grant_refresh_lease_take(*, grant_id: int, seconds: float) -> datetime | None:
    """The end of the grant's refresh lease, now this caller's; None while another holds it."""
    now = timezone.now()
    until = now + timedelta(seconds=seconds)
    free = Q(refreshing_until__isnull=True) | Q(refreshing_until__lt=now)
    taken = Grant.objects.filter(free, pk=grant_id).update(refreshing_until=until)
    if taken:
        return until
    if not Grant.objects.filter(pk=grant_id).exists():
        raise Grant.DoesNotExist(f"No grant {grant_id}.")
    return None


def _check_refreshable(grant: Grant, tokens: TokenSet | None) -> None:
    if not grant.client.is_enabled:
        raise NeedsAdmin(f"Client {grant.client.name} is disabled.", code="client_disabled")
    if grant.state == Grant.State.REAUTHORIZATION_REQUIRED:
        raise NeedsAdmin(
            f"Grant {grant} needs to be validated again: {grant.last_error}",
            code="reauthorization_required",
        )
    if tokens is None:
        raise NeedsAdmin(
            f"Client {grant.client.name} is not authorized yet: press Validate.",
            code="not_authorized",
        )
    if not tokens.refresh_token:
        raise NeedsAdmin(
            f"Grant {grant} has no refresh token: validate it again (with offline access).",
            code="reauthorization_required",
        )


def _refresh_succeeded(*, grant: Grant, tokens: TokenSet, actor: Actor) -> None:
    grant.token_set = tokens.to_dict()  # type: ignore[assignment]
    grant.expires_at = tokens.expiry
    grant.scope = tokens.scope or grant.scope
    grant.state = Grant.State.AUTHORIZED
    grant.last_refresh_at = timezone.now()
    grant.refresh_count += 1
    grant.last_error = ""
    grant.last_error_at = None
    grant.refreshing_until = None
    grant.save()
    audit_record(actor=actor, target=grant, action=AuditAction.GRANT_REFRESHED)
    log.info("Refreshed grant %s (%s); valid until %s", grant.pk, grant.account, grant.expires_at)


def _refresh_failed(*, grant: Grant, exc: Exception, actor: Actor) -> ServiceError:
    error: ServiceError
    if isinstance(exc, EndpointsMissing):
        error = NeedsAdmin(str(exc), code="endpoints_missing")
        state = Grant.State.ERROR
    elif isinstance(exc, ProviderError) and exc.needs_reauthorization:
        error = NeedsAdmin(
            f"The provider refused the refresh token ({exc.message}): validate again.",
            code="reauthorization_required",
        )
        state = Grant.State.REAUTHORIZATION_REQUIRED
    elif isinstance(exc, ProviderError):
        hint = get_provider(grant.client.provider).error_hint(exc.aadsts, exc.error)
        hint = f" {hint}" if hint else ""
        error = PeerFailed(
            f"The refresh failed ({exc.message}).{hint}",
            code="provider_unreachable" if exc.transient else "provider_error",
            transient=exc.transient,
        )
        # A passing outage leaves the grant authorized: the next call simply tries again.
        state = Grant.State.AUTHORIZED if exc.transient else Grant.State.ERROR
    else:  # pragma: no cover - defensive
        raise exc
    grant.state = state
    grant.last_error = error.message
    grant.last_error_at = timezone.now()
    grant.save(update_fields=["state", "last_error", "last_error_at", "updated_at"])
    audit_record(
        actor=actor,
        target=grant,
        action=AuditAction.GRANT_REFRESH_FAILED,
        outcome="failed",
        message=error.message,
    )
    log.warning("Refresh of grant %s failed: %s", grant.pk, error.message)
    return error
