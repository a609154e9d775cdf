"""Validate: authorization code + PKCE, from the started request to the stored grant.

Nothing changes unless the provider's answer checks out: state (single use, bound to the
browser session that started it, short-lived), RFC 9207 iss, the ID token."""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme

from mailgrant.common.audit import SYSTEM, Actor, AuditAction, audit_record
from mailgrant.common.errors import Invalid, NeedsAdmin, PeerFailed, Refused, ServiceError
from mailgrant.common.events import event_record
from mailgrant.oauth import protocol, schedule
from mailgrant.oauth.models import Grant, OAuthClient, PendingAuthorization
from mailgrant.oauth.protocol import ProviderError, TokenSet
from mailgrant.oauth.selectors import (
    Endpoints,
    EndpointsMissing,
    oauth_client_credentials,
    oauth_client_endpoints,
    oauth_client_http,
    oauth_client_redirect_uri,
)
from mailgrant.providers import get_provider

log = logging.getLogger(__name__)


ACCOUNT_CLAIMS = ("email", "preferred_username", "upn", "unique_name", "sub")


@dataclass(frozen=True)
class StartedAuthorization:
    url: str
    binding: str
    pending: PendingAuthorization


@dataclass(frozen=True)
class Authorized:
    grant: Grant
    account: str
    warnings: list[str] = field(default_factory=list)
    return_url: str = ""


# Started outside a browser session (an API call, the command line): the state alone is the key,
# so any browser may finish them; one started for a named account finishes only as that account
# (_check_expected_account).
UNBOUND_PURPOSES = {PendingAuthorization.Purpose.API, PendingAuthorization.Purpose.CLI}


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def authorization_start(
    *,
    client: OAuthClient,
    purpose: str,
    actor: Actor = SYSTEM,
    grant: Grant | None = None,
    login_hint: str = "",
    return_url: str = "",
    client_ip: str | None = None,
    audited: bool = True,
) -> StartedAuthorization:
    """Build the provider's authorize URL and remember what the callback must check.
    `audited=False` for a start that needs no account (a sign-in), audited when it ends."""
    if not client.is_enabled:
        raise NeedsAdmin(
            "This client is disabled: enable it before validating.", code="client_disabled"
        )
    if grant is not None and grant.client_id != client.pk:
        raise Invalid({"grant": "That grant belongs to another client."})
    try:
        endpoints = oauth_client_endpoints(client=client)
    except EndpointsMissing as exc:
        raise NeedsAdmin(str(exc), code="endpoints_missing") from None
    request = protocol.new_authorization(
        authorize_url=endpoints.authorize_url,
        client_id=client.client_id,
        redirect_uri=oauth_client_redirect_uri(client=client),
        scopes=endpoints.scopes,
        scope_separator=endpoints.scope_separator,
        extra_params={
            **endpoints.authorize_params,
            **({"login_hint": login_hint} if login_hint else {}),
        },
    )
    binding = secrets.token_urlsafe(32)
    now = timezone.now()
    with transaction.atomic():
        authorization_purge_expired()
        pending = PendingAuthorization.objects.create(
            state_hash=_sha256(request.state),
            binding_hash=_sha256(binding),
            client=client,
            grant=grant,
            purpose=purpose,
            user=actor.user if actor.user_id else None,
            started_by=actor.name[:200],
            code_verifier=request.code_verifier,
            nonce=request.nonce or "",
            redirect_uri=oauth_client_redirect_uri(client=client),
            # Only a path on this site: "//evil", "/\\evil" and absolute URLs are dropped.
            return_url=return_url
            if url_has_allowed_host_and_scheme(return_url, allowed_hosts=set())
            else "",
            expected_account=login_hint,
            client_ip=client_ip,
            expires_at=now + timedelta(seconds=settings.MAILGRANT_AUTHORIZATION_TTL),
        )
        if audited:
            audit_record(
                actor=actor, target=client, action=AuditAction.OAUTH_CLIENT_VALIDATE_STARTED
            )
    return StartedAuthorization(url=request.url, binding=binding, pending=pending)


def authorization_complete(
    *,
    client_id: int,
    state: str,
    bindings: Collection[str] = (),
    code: str = "",
    error: str = "",
    error_description: str = "",
    iss: str | None = None,
) -> Authorized:
    """Finish a Validate from the provider's redirect. Nothing changes unless it all checks out;
    the audit rows name whoever started it (the redirect may land in any browser)."""
    pending = authorization_consume(client_id=client_id, state=state, bindings=bindings)
    try:
        result = _authorization_finish(
            pending=pending,
            code=code,
            error=error,
            error_description=error_description,
            iss=iss,
        )
    except ServiceError as exc:
        with transaction.atomic():
            PendingAuthorization.objects.filter(pk=pending.pk).update(
                outcome=PendingAuthorization.Outcome.FAILED, message=exc.message
            )
            audit_record(
                actor=_started_by(pending),
                target=pending.client,
                action=AuditAction.OAUTH_CLIENT_VALIDATE_FAILED,
                outcome="failed",
                message=exc.message,
            )
        raise
    return result


def authorization_consume(
    *, client_id: int, state: str, bindings: Collection[str]
) -> PendingAuthorization:
    if not state:
        raise Refused(
            "The provider's answer carries no state, so it cannot be matched to a Validate "
            "started here. Start Validate again.",
            code="state_missing",
        )
    now = timezone.now()
    pending = (
        PendingAuthorization.objects.select_related("client", "grant", "user")
        .filter(state_hash=_sha256(state), client_id=client_id)
        .first()
    )
    if pending is None:
        raise Refused(
            "Unknown state: this answer does not belong to a Validate started here (forged, "
            "or meant for another server). Nothing was changed.",
            code="state_unknown",
        )
    if pending.consumed_at is not None:
        raise Refused(
            "This authorization answer was already used (a replay, or the page was reloaded). "
            "Nothing was changed; start Validate again if needed.",
            code="state_replayed",
        )
    if pending.expires_at <= now:
        raise Refused(
            f"This Validate took longer than {settings.MAILGRANT_AUTHORIZATION_TTL // 60} minutes "
            "and expired. Start it again.",
            code="state_expired",
        )
    if pending.purpose not in UNBOUND_PURPOSES and pending.binding_hash not in {
        _sha256(b) for b in bindings
    }:
        raise Refused(
            "This Validate was started in another browser session; finish it where it began.",
            code="state_unbound",
        )
    consumed = PendingAuthorization.objects.filter(pk=pending.pk, consumed_at__isnull=True).update(
        consumed_at=now
    )
    if consumed != 1:
        raise Refused("This authorization answer was already used.", code="state_replayed")
    return pending


@dataclass(frozen=True)
class Exchanged:
    """What the provider's answer gave once every check passed: tokens and verified claims."""

    client: OAuthClient
    endpoints: Endpoints
    tokens: TokenSet
    claims: dict[str, Any]


def authorization_exchange(
    *,
    pending: PendingAuthorization,
    code: str,
    error: str = "",
    error_description: str = "",
    iss: str | None = None,
) -> Exchanged:
    """Trade the code for tokens and check who signed in (RFC 9207 iss, ID token). Writes
    nothing: Validate stores a grant from it, a sign-in provisions a user."""
    client = OAuthClient.objects.get(pk=pending.client_id)
    if error:
        text = f"{error}: {error_description}" if error_description else error
        refusal = Refused if error == "access_denied" else PeerFailed
        raise refusal(
            f"The provider refused the authorization ({text}).",
            code=error if error == "access_denied" else "provider_error",
        )
    if not client.is_enabled:
        raise NeedsAdmin(
            "This client was disabled meanwhile; nothing was stored.", code="client_disabled"
        )
    if not code:
        raise Refused("The provider's answer has no authorization code.", code="code_missing")
    try:
        endpoints = oauth_client_endpoints(client=client)
    except EndpointsMissing as exc:
        raise NeedsAdmin(str(exc), code="endpoints_missing") from None
    _check_iss(provider_id=client.provider, endpoints=endpoints, iss=iss)
    http = oauth_client_http(client=client)
    try:
        tokens = protocol.exchange_code(
            http=http,
            token_url=endpoints.token_url,
            credentials=oauth_client_credentials(client=client),
            code=code,
            redirect_uri=pending.redirect_uri,
            code_verifier=pending.code_verifier.reveal() if pending.code_verifier else "",
        )
        claims = _identity_claims(
            client=client, endpoints=endpoints, tokens=tokens, nonce=pending.nonce or None
        )
    except ProviderError as exc:
        raise _provider_failure(exc) from None
    return Exchanged(client=client, endpoints=endpoints, tokens=tokens, claims=claims)


def _provider_failure(exc: ProviderError) -> PeerFailed:
    prefix = "The provider could not be reached" if exc.transient else "The provider refused"
    return PeerFailed(
        f"{prefix}: {exc.message}",
        code="provider_unreachable" if exc.transient else exc.error,
        transient=exc.transient,
    )


def _authorization_finish(
    *,
    pending: PendingAuthorization,
    code: str,
    error: str,
    error_description: str,
    iss: str | None,
) -> Authorized:
    exchanged = authorization_exchange(
        pending=pending, code=code, error=error, error_description=error_description, iss=iss
    )
    claims = exchanged.claims
    account = next((str(claims[c]) for c in ACCOUNT_CLAIMS if claims.get(c)), "")
    _check_expected_account(pending=pending, claims=claims, account=account)
    return _grant_store_authorization(
        pending=pending,
        client=exchanged.client,
        tokens=exchanged.tokens,
        account=account,
        subject=str(claims.get("sub", "")),
    )


def _check_expected_account(
    *, pending: PendingAuthorization, claims: dict[str, Any], account: str
) -> None:
    """A Validate started for a named account (a login hint, a mailbox's address) finishes
    only as that account: the authorize URL may be seen by others (a chat, a terminal), and
    whoever opens it must not put their own mailbox in its place."""
    expected = pending.expected_account
    if not expected:
        return
    names = {str(claims[c]).casefold() for c in ACCOUNT_CLAIMS if claims.get(c)}
    if expected.casefold() in names:
        return
    raise Refused(
        f"Signed in as {account or 'an account the provider does not name'}, but this "
        f"authorization is for {expected}: nothing was stored. Sign in as {expected} and "
        "start again.",
        code="account_mismatch",
    )


def _check_iss(*, provider_id: str, endpoints: Endpoints, iss: str | None) -> None:
    """RFC 9207: the authorization response names its issuer; a mix-up shows as a mismatch."""
    if iss is None:
        if endpoints.iss_parameter_supported:
            raise Refused(
                "The provider announces the iss parameter but the answer has none (RFC 9207): "
                "refused as a possible mix-up.",
                code="iss_missing",
            )
        return
    expected = endpoints.issuer
    if not expected:
        return
    if not get_provider(provider_id).issuer_matches(expected=expected, iss=iss):
        raise Refused(
            f"The answer comes from issuer {iss!r}, not {expected!r} (RFC 9207 mix-up check).",
            code="iss_mismatch",
        )


def _identity_claims(
    *, client: OAuthClient, endpoints: Endpoints, tokens: TokenSet, nonce: str | None
) -> dict[str, Any]:
    http = oauth_client_http(client=client)
    if tokens.id_token and endpoints.jwks_uri and endpoints.issuer:
        jwks = protocol.fetch_jwks(http=http, jwks_uri=endpoints.jwks_uri)
        return protocol.verify_id_token(
            id_token=tokens.id_token,
            jwks=jwks,
            issuer=endpoints.issuer,
            client_id=client.client_id,
            nonce=nonce,
        )
    if endpoints.userinfo_url:
        return protocol.fetch_userinfo(
            http=http, url=endpoints.userinfo_url, access_token=tokens.access_token
        )
    return {}


def _grant_store_authorization(
    *,
    pending: PendingAuthorization,
    client: OAuthClient,
    tokens: TokenSet,
    account: str,
    subject: str,
) -> Authorized:
    warnings: list[str] = []
    now = timezone.now()
    with transaction.atomic():
        if pending.grant_id:
            grant = Grant.objects.select_for_update().get(pk=pending.grant_id)
        else:
            grant = Grant.objects.select_for_update().filter(
                client=client, is_default=True
            ).first() or Grant(client=client, is_default=True)
        previous = grant.tokens() if grant.pk else None
        if not tokens.refresh_token:
            same_account = previous and previous.refresh_token and grant.account == account
            if same_account and get_provider(client.provider).reconsent_keeps_refresh_token:
                tokens = tokens.after_refresh(previous)  # type: ignore[arg-type]
            if client.type == OAuthClient.Type.MAILBOX and not tokens.refresh_token:
                warnings.append(
                    "The provider returned no refresh token: access stops when the access token "
                    "expires. Ask for offline access (offline_access, or Google's "
                    "access_type=offline with prompt=consent)."
                )
        if grant.pk and grant.account and account and grant.account != account:
            warnings.append(
                f"This grant was authorized as {grant.account} before; it is now {account}."
            )
        grant.account = account
        grant.subject = subject
        grant.state = Grant.State.AUTHORIZED
        grant.token_set = tokens.to_dict()  # type: ignore[assignment]
        # The set as first obtained, as a record: without the refresh token, which would be a
        # second copy of a credential that may still be live.
        grant.original_token_set = replace(tokens, refresh_token=None).to_dict()  # type: ignore[assignment]
        grant.scope = tokens.scope
        grant.expires_at = tokens.expiry
        grant.authorized_at = now
        grant.last_error = ""
        grant.last_error_at = None
        grant.health_succeeded(now=now)
        grant.next_refresh_at = schedule.next_refresh_at(
            tokens=tokens, last_used_at=grant.last_used_at, now=now
        )
        grant.refresh_claimed_by = ""
        grant.save()
        PendingAuthorization.objects.filter(pk=pending.pk).update(
            outcome=PendingAuthorization.Outcome.SUCCEEDED,
            message=f"Authorized as {account or 'an unnamed account'}",
            result_grant=grant,
        )
        audit_record(
            actor=_started_by(pending),
            target=grant,
            action=AuditAction.GRANT_AUTHORIZED,
            message=f"Authorized as {account}",
        )
        event_record(
            type="grant.authorized",
            subject=grant,
            data={
                "account": account,
                "scope": tokens.scope,
                "client": {"id": client.pk, "name": client.name},
                "again": previous is not None,
            },
            client_id=client.pk,
        )
    log.info("Client %s authorized as %s (grant %s)", client.name, account, grant.pk)
    return Authorized(
        grant=grant, account=account, warnings=warnings, return_url=pending.return_url
    )


def authorization_purge_expired() -> int:
    """Delete started authorizations older than a day (kept a while for the API to poll)."""
    cutoff = timezone.now() - timedelta(days=1)
    deleted, _ = PendingAuthorization.objects.filter(expires_at__lt=cutoff).delete()
    return deleted


def _started_by(pending: PendingAuthorization) -> Actor:
    """Who started the authorization: the callback is the provider's redirect, whoever's
    browser it lands in, so the row names the actor of the start."""
    return Actor(name=pending.started_by or SYSTEM.name, user=pending.user)
