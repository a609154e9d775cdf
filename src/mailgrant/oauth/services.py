"""Writes: saving clients, Validate (start and complete), keeping grants' tokens fresh.

Each write runs in one transaction together with its audit row. Protocol work is delegated to
:mod:`mailgrant.oauth.client`, which knows nothing of Django.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme

from mailgrant.common.audit import AuditTarget, actor_for, audit_record, audit_write
from mailgrant.common.http import ProxyError, validate_proxy
from mailgrant.oauth import client as protocol
from mailgrant.oauth.client import ProviderError, TokenSet
from mailgrant.oauth.models import Grant, OAuthClient, PendingAuthorization
from mailgrant.oauth.selectors import (
    Endpoints,
    EndpointsMissing,
    grant_cached_token,
    oauth_client_credentials,
    oauth_client_endpoints,
    oauth_client_http,
    oauth_client_redirect_uri,
    tokens_usable,
)
from mailgrant.providers import get_provider
from mailgrant.sso.claims import ClaimPathError, claim_path_parse, user_fields_check
from mailgrant.sso.expression import ExpressionSyntaxError, expression_compile
from mailgrant.sso.icons import icon_name_check

log = logging.getLogger(__name__)

ACCOUNT_CLAIMS = ("email", "preferred_username", "upn", "unique_name", "sub")


class OAuthServiceError(Exception):
    """A failure with a sentence for the administrator (`message`) and a stable `code`."""

    code = "error"

    def __init__(self, message: str, *, code: str | None = None, transient: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.transient = transient
        if code:
            self.code = code


class AuthorizationFailed(OAuthServiceError):
    code = "authorization_failed"


class GrantUnusable(OAuthServiceError):
    """No valid access token can be had: the grant needs the admin (or the provider is down)."""

    code = "grant_unusable"


class InUse(OAuthServiceError):
    """Something still points at what was to be deleted; nothing was changed."""

    code = "in_use"


class OAuthClientInvalid(OAuthServiceError):
    code = "invalid"

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


# --- clients -------------------------------------------------------------------------------


def oauth_client_check(*, client: OAuthClient) -> dict[str, str]:
    """Field errors of `client` as it stands, running OIDC discovery where it applies.

    On success the discovered metadata is left on ``client.metadata`` (not saved)."""
    errors = _sign_in_errors(client=client)
    if client.proxy:
        try:
            validate_proxy(client.proxy)
        except ProxyError as exc:
            errors["proxy"] = str(exc)
    provider = get_provider(client.provider)
    if not provider.uses_discovery:
        client.metadata = {}
        return errors
    if not client.issuer:
        client.metadata = {}
        if not (client.authorize_url and client.token_url):
            errors.setdefault(
                "issuer",
                "Enter the issuer URL (for discovery) or both the authorize and token URLs.",
            )
        return errors
    if client.metadata.get("discovered_from") == client.issuer or "proxy" in errors:
        return errors
    try:
        found = protocol.discover(http=oauth_client_http(client=client), issuer=client.issuer)
    except ProviderError as exc:
        errors["issuer"] = f"OpenID discovery failed: {exc.description or exc.error}"
        return errors
    client.metadata = {
        "discovered_from": client.issuer,
        "issuer": found.issuer,
        "authorization_endpoint": found.authorization_endpoint,
        "token_endpoint": found.token_endpoint,
        "userinfo_endpoint": found.userinfo_endpoint,
        "jwks_uri": found.jwks_uri,
        "iss_parameter_supported": found.iss_parameter_supported,
        "token_endpoint_auth_methods": list(found.token_endpoint_auth_methods),
    }
    return errors


def _sign_in_errors(*, client: OAuthClient) -> dict[str, str]:
    """The user-type fields: claim paths, the icon name, the create expression (compiled now,
    so a syntax error shows on the form with its position, not at someone's sign-in)."""
    errors: dict[str, str] = {}
    if mapping_errors := user_fields_check(client.user_fields):
        errors["user_fields"] = "; ".join(
            message if name == "user_fields" else f"{name}: {message}"
            for name, message in mapping_errors.items()
        )
    if client.username_attribute:
        try:
            claim_path_parse(client.username_attribute)
        except ClaimPathError as exc:
            errors["username_attribute"] = str(exc)
    if icon_error := icon_name_check(client.login_button_icon):
        errors["login_button_icon"] = icon_error
    if client.user_create_expression.strip():
        try:
            expression_compile(client.user_create_expression)
        except ExpressionSyntaxError as exc:
            errors["user_create_expression"] = str(exc)
    return errors


def oauth_client_save(
    *,
    client: OAuthClient,
    client_secret: str | None = None,
    related_ldaps: Collection[Any] | None = None,
    user: Any = None,
) -> OAuthClient:
    """Create or update `client`; a non-empty `client_secret` replaces the stored one, and
    `related_ldaps` (LDAP directories), when given, replaces the client's."""
    errors = oauth_client_check(client=client)
    if errors:
        raise OAuthClientInvalid(errors)
    if client_secret:
        client.client_secret = client_secret  # type: ignore[assignment]  # sealed on save
    creating = client.pk is None
    with transaction.atomic():
        client.save()
        if related_ldaps is not None:
            client.related_ldaps.set(related_ldaps)
        audit_record(
            actor=actor_for(user),
            user=user,
            target=client,
            action="oauth_client.created" if creating else "oauth_client.updated",
            message="client secret replaced" if client_secret and not creating else "",
        )
    return client


def oauth_client_set_status(*, client: OAuthClient, status: str, user: Any = None) -> OAuthClient:
    with transaction.atomic():
        client.status = status
        client.save(update_fields=["status", "updated_at"])
        audit_record(
            actor=actor_for(user), user=user, target=client, action=f"oauth_client.{status}"
        )
    return client


def oauth_client_delete(*, client: OAuthClient, user: Any = None) -> None:
    """Delete `client` and its grants; refused while a mailbox logs in with it."""
    users = sorted(client.mailboxes.values_list("name", flat=True))  # type: ignore[attr-defined]
    if users:
        raise InUse(f"Mailboxes use this client ({', '.join(users)}): change or delete them first.")
    with transaction.atomic():
        audit_record(actor=actor_for(user), user=user, target=client, action="oauth_client.deleted")
        client.delete()


# --- Validate: authorization code + PKCE -----------------------------------------------------


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
# so any browser may finish them.
UNBOUND_PURPOSES = {PendingAuthorization.Purpose.API, PendingAuthorization.Purpose.CLI}


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def authorization_start(
    *,
    client: OAuthClient,
    purpose: str,
    user: Any = None,
    grant: Grant | None = None,
    login_hint: str = "",
    return_url: str = "",
) -> StartedAuthorization:
    """Build the provider's authorize URL and remember what the callback must check."""
    if not client.is_enabled:
        raise AuthorizationFailed(
            "This client is disabled: enable it before validating.", code="client_disabled"
        )
    if grant is not None and grant.client_id != client.pk:
        raise AuthorizationFailed("That grant belongs to another client.")
    try:
        endpoints = oauth_client_endpoints(client=client)
    except EndpointsMissing as exc:
        raise AuthorizationFailed(str(exc), code="endpoints_missing") from None
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
            user=user if getattr(user, "pk", None) else None,
            code_verifier=request.code_verifier,
            nonce=request.nonce or "",
            redirect_uri=oauth_client_redirect_uri(client=client),
            # Only a path on this site: "//evil", "/\\evil" and absolute URLs are dropped.
            return_url=return_url
            if url_has_allowed_host_and_scheme(return_url, allowed_hosts=set())
            else "",
            expected_account=login_hint,
            expires_at=now + timedelta(seconds=settings.MAILGRANT_AUTHORIZATION_TTL),
        )
        audit_record(
            actor=actor_for(user), user=user, target=client, action="oauth_client.validate_started"
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
    user: Any = None,
) -> Authorized:
    """Finish a Validate from the provider's redirect. Nothing changes unless it all checks out."""
    pending = authorization_consume(client_id=client_id, state=state, bindings=bindings)
    try:
        result = _authorization_finish(
            pending=pending,
            code=code,
            error=error,
            error_description=error_description,
            iss=iss,
        )
    except AuthorizationFailed as exc:
        with transaction.atomic():
            PendingAuthorization.objects.filter(pk=pending.pk).update(
                outcome=PendingAuthorization.Outcome.FAILED, message=exc.message
            )
            audit_record(
                actor=actor_for(user or pending.user),
                user=user or pending.user,
                target=pending.client,
                action="oauth_client.validate_failed",
                outcome="failed",
                message=exc.message,
            )
        raise
    return result


def authorization_consume(
    *, client_id: int, state: str, bindings: Collection[str]
) -> PendingAuthorization:
    if not state:
        raise AuthorizationFailed(
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
        raise AuthorizationFailed(
            "Unknown state: this answer does not belong to a Validate started here (forged, "
            "or meant for another server). Nothing was changed.",
            code="state_unknown",
        )
    if pending.consumed_at is not None:
        raise AuthorizationFailed(
            "This authorization answer was already used (a replay, or the page was reloaded). "
            "Nothing was changed; start Validate again if needed.",
            code="state_replayed",
        )
    if pending.expires_at <= now:
        raise AuthorizationFailed(
            "This Validate took longer than 10 minutes and expired. Start it again.",
            code="state_expired",
        )
    if pending.purpose not in UNBOUND_PURPOSES and pending.binding_hash not in {
        _sha256(b) for b in bindings
    }:
        raise AuthorizationFailed(
            "This Validate was started in another browser session; finish it where it began.",
            code="state_unbound",
        )
    consumed = PendingAuthorization.objects.filter(pk=pending.pk, consumed_at__isnull=True).update(
        consumed_at=now
    )
    if consumed != 1:
        raise AuthorizationFailed(
            "This authorization answer was already used.", code="state_replayed"
        )
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
        raise AuthorizationFailed(
            f"The provider refused the authorization ({text}).",
            code=error if error == "access_denied" else "provider_error",
        )
    if not client.is_enabled:
        raise AuthorizationFailed(
            "This client was disabled meanwhile; nothing was stored.", code="client_disabled"
        )
    if not code:
        raise AuthorizationFailed("The provider's answer has no authorization code.")
    try:
        endpoints = oauth_client_endpoints(client=client)
    except EndpointsMissing as exc:
        raise AuthorizationFailed(str(exc)) from None
    _check_iss(endpoints=endpoints, iss=iss)
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


def _provider_failure(exc: ProviderError) -> AuthorizationFailed:
    prefix = "The provider could not be reached" if exc.transient else "The provider refused"
    return AuthorizationFailed(
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
    return _grant_store_authorization(
        pending=pending,
        client=exchanged.client,
        tokens=exchanged.tokens,
        account=account,
        subject=str(claims.get("sub", "")),
    )


def _check_iss(*, endpoints: Endpoints, iss: str | None) -> None:
    """RFC 9207: the authorization response names its issuer; a mix-up shows as a mismatch."""
    if iss is None:
        if endpoints.iss_parameter_supported:
            raise AuthorizationFailed(
                "The provider announces the iss parameter but the answer has none (RFC 9207): "
                "refused as a possible mix-up.",
                code="iss_missing",
            )
        return
    expected = endpoints.issuer
    if not expected:
        return
    if "{tenantid}" in expected:
        prefix, _, suffix = expected.partition("{tenantid}")
        matches = iss.startswith(prefix) and iss.endswith(suffix)
    else:
        matches = iss.rstrip("/") == expected.rstrip("/")
    if not matches:
        raise AuthorizationFailed(
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
            if previous and previous.refresh_token and grant.account == account:
                # Google omits the refresh token on re-consent without prompt=consent; the one
                # we hold for this same account still works.
                tokens = tokens.after_refresh(previous)
            if client.type == OAuthClient.Type.MAILBOX and not tokens.refresh_token:
                warnings.append(
                    "The provider returned no refresh token: access stops when the access token "
                    "expires. Ask for offline access (offline_access, or Google's "
                    "access_type=offline with prompt=consent)."
                )
        expected = pending.expected_account
        if expected and account and expected.lower() != account.lower():
            warnings.append(
                f"Authorized as {account}, but the mailbox is {expected}: the mail "
                "server will refuse this token unless that account may use it."
            )
        elif grant.pk and grant.account and account and grant.account != account:
            warnings.append(
                f"This grant was authorized as {grant.account} before; it is now {account}."
            )
        grant.account = account
        grant.subject = subject
        grant.state = Grant.State.AUTHORIZED
        grant.token_set = tokens.to_dict()  # type: ignore[assignment]
        grant.original_token_set = tokens.to_dict()  # type: ignore[assignment]
        grant.scope = tokens.scope
        grant.expires_at = _as_datetime(tokens.expires_at)
        grant.authorized_at = now
        grant.last_error = ""
        grant.last_error_at = None
        grant.save()
        PendingAuthorization.objects.filter(pk=pending.pk).update(
            outcome=PendingAuthorization.Outcome.SUCCEEDED,
            message=f"Authorized as {account or 'an unnamed account'}",
            result_grant=grant,
        )
        audit_record(
            actor=actor_for(pending.user),
            user=pending.user,
            target=grant,
            action="grant.authorized",
            message=f"Authorized as {account}",
        )
    log.info("Client %s authorized as %s (grant %s)", client.name, account, grant.pk)
    return Authorized(
        grant=grant, account=account, warnings=warnings, return_url=pending.return_url
    )


def _as_datetime(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, tz=UTC)


def authorization_purge_expired() -> int:
    """Delete started authorizations older than a day (kept a while for the API to poll)."""
    cutoff = timezone.now() - timedelta(days=1)
    deleted, _ = PendingAuthorization.objects.filter(expires_at__lt=cutoff).delete()
    return deleted


# --- keeping tokens fresh --------------------------------------------------------------------


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


def access_token_issue(
    *, grant_id: int, min_valid_seconds: float = 0, actor: str, user: Any = None
) -> TokenSet:
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
        user=user,
        action="grant.token_issued",
        target=AuditTarget(type=Grant._meta.label_lower, id=str(grant_id), name=grant_name),
    )
    return tokens


def _access_token_refreshed(*, grant_id: int, min_valid_seconds: float) -> tuple[TokenSet, Grant]:
    """The slow path: the grant read whole, refreshed when needed (once, however many callers
    ask at once), or the reason why no token can be had raised as GrantUnusable."""
    grant = Grant.objects.select_related("client").get(pk=grant_id)
    tokens = grant.tokens()
    if _is_fresh(grant, tokens, min_valid_seconds):
        return tokens, grant  # type: ignore[return-value]
    try:
        grant = grant_refresh(grant=grant, force=False, min_valid_seconds=min_valid_seconds)
    except GrantUnusable as exc:
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


def grant_set_default(*, grant: Grant, user: Any = None) -> Grant:
    """Make `grant` the one its client uses wherever no grant is named (mailboxes, refresh)."""
    with transaction.atomic():
        grant = Grant.objects.select_for_update().select_related("client").get(pk=grant.pk)
        if grant.is_default:
            return grant
        # The old default goes first: one default per client is a database constraint.
        Grant.objects.filter(client_id=grant.client_id, is_default=True).update(is_default=False)
        grant.is_default = True
        grant.save(update_fields=["is_default", "updated_at"])
        audit_record(actor=actor_for(user), user=user, target=grant, action="grant.default_set")
    return grant


def grant_delete(*, grant: Grant, user: Any = None) -> None:
    """Forget `grant` and its tokens; refused while a mailbox uses it (it would silently fall
    back to another account)."""
    users = sorted(grant.mailboxes.values_list("name", flat=True))  # type: ignore[attr-defined]
    if users:
        raise InUse(
            f"Mailboxes use this grant ({', '.join(users)}): point them at another grant first."
        )
    with transaction.atomic():
        audit_record(actor=actor_for(user), user=user, target=grant, action="grant.deleted")
        grant.delete()


def grant_refresh(
    *, grant: Grant, force: bool = True, min_valid_seconds: float = 0, user: Any = None
) -> Grant:
    """Refresh `grant`'s tokens at the provider, once, however many callers ask at once.

    The grant's row stays locked around the token request and is re-read after the lock is
    taken: a caller that waited finds the fresh token and does not spend the (rotated) refresh
    token a second time."""
    failure: GrantUnusable | None = None
    with transaction.atomic():
        grant = Grant.objects.select_for_update().select_related("client").get(pk=grant.pk)
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
            failure = _refresh_failed(grant=grant, exc=exc, user=user)
        else:
            _refresh_succeeded(grant=grant, tokens=new.after_refresh(tokens), user=user)
    if failure is not None:
        raise failure
    return grant


def _check_refreshable(grant: Grant, tokens: TokenSet | None) -> None:
    if not grant.client.is_enabled:
        raise GrantUnusable(f"Client {grant.client.name} is disabled.", code="client_disabled")
    if grant.state == Grant.State.REAUTHORIZATION_REQUIRED:
        raise GrantUnusable(
            f"Grant {grant} needs to be validated again: {grant.last_error}",
            code="reauthorization_required",
        )
    if tokens is None:
        raise GrantUnusable(
            f"Client {grant.client.name} is not authorized yet: press Validate.",
            code="not_authorized",
        )
    if not tokens.refresh_token:
        raise GrantUnusable(
            f"Grant {grant} has no refresh token: validate it again (with offline access).",
            code="reauthorization_required",
        )


def _refresh_succeeded(*, grant: Grant, tokens: TokenSet, user: Any) -> None:
    grant.token_set = tokens.to_dict()  # type: ignore[assignment]
    grant.expires_at = _as_datetime(tokens.expires_at)
    grant.scope = tokens.scope or grant.scope
    grant.state = Grant.State.AUTHORIZED
    grant.last_refresh_at = timezone.now()
    grant.refresh_count += 1
    grant.last_error = ""
    grant.last_error_at = None
    grant.save()
    audit_record(actor=actor_for(user), user=user, target=grant, action="grant.refreshed")
    log.info("Refreshed grant %s (%s); valid until %s", grant.pk, grant.account, grant.expires_at)


def _refresh_failed(*, grant: Grant, exc: Exception, user: Any) -> GrantUnusable:
    if isinstance(exc, EndpointsMissing):
        error = GrantUnusable(str(exc), code="endpoints_missing")
        state = Grant.State.ERROR
    elif isinstance(exc, ProviderError) and exc.needs_reauthorization:
        error = GrantUnusable(
            f"The provider refused the refresh token ({exc.message}): validate again.",
            code="reauthorization_required",
        )
        state = Grant.State.REAUTHORIZATION_REQUIRED
    elif isinstance(exc, ProviderError):
        hint = ""
        if exc.aadsts == "AADSTS7000222":
            hint = " The client secret has expired: create a new one at the provider."
        elif exc.error == "invalid_client":
            hint = " Check the client ID and secret."
        error = GrantUnusable(
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
        actor=actor_for(user),
        user=user,
        target=grant,
        action="grant.refresh_failed",
        outcome="failed",
        message=error.message,
    )
    log.warning("Refresh of grant %s failed: %s", grant.pk, error.message)
    return error
