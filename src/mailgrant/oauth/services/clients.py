"""OAuth clients: checked (OIDC discovery where it applies), saved, enabled or disabled, deleted."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from django.db import models, transaction
from django.db.models import ProtectedError, Q
from django.utils import timezone

from mailgrant.common.audit import SYSTEM, Actor, AuditAction, audit_record
from mailgrant.common.errors import Conflict, InUse, Invalid
from mailgrant.common.health import Health, reason_of
from mailgrant.common.http import (
    PROXY_PASSWORD_MASK,
    ProxyError,
    proxy_destination,
    proxy_masked,
    proxy_password_of,
    validate_proxy,
)
from mailgrant.common.validation import model_errors, users_of
from mailgrant.oauth import protocol
from mailgrant.oauth.models import Grant, OAuthClient
from mailgrant.oauth.protocol import ProviderError
from mailgrant.oauth.selectors import (
    OAUTH_CLIENT_FIELDS,
    EndpointsMissing,
    oauth_client_endpoints,
    oauth_client_http,
)
from mailgrant.oauth.services.grants import grant_tokens_drop
from mailgrant.providers import get_provider


def oauth_client_check(*, client: OAuthClient) -> dict[str, str]:
    """Field errors of `client` as it stands, running OIDC discovery where it applies.

    On success the discovered metadata is left on ``client.metadata`` (not saved)."""
    errors = _proxy_seal(client=client, stored=_stored(client))
    if client.proxy and not errors:
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


def _stored(client: OAuthClient) -> OAuthClient | None:
    """The client as saved (an admin form changes the instance before the service sees it)."""
    return OAuthClient.objects.filter(pk=client.pk).first() if client.pk else None


def _proxy_seal(*, client: OAuthClient, stored: OAuthClient | None) -> dict[str, str]:
    """A password in the proxy URL moves to the vault (the URL keeps the mask). The mask keeps
    the stored password, but only for the same proxy and user: the stored password never goes
    to a proxy it was not given for."""
    given = proxy_password_of(client.proxy)
    if not given:
        client.proxy_password = None
        return {}
    if given != PROXY_PASSWORD_MASK:
        client.proxy_password = given  # type: ignore[assignment]  # sealed on save
        client.proxy = proxy_masked(client.proxy)
        return {}
    if isinstance(client.proxy_password, str) and client.proxy_password:
        return {}  # given in this change, sealed above
    if (
        stored is not None
        and stored.proxy_password
        and proxy_destination(stored.proxy) == proxy_destination(client.proxy)
    ):
        client.proxy_password = stored.proxy_password
        return {}
    return {
        "proxy": "This proxy has no stored password: type it in the URL "
        "(scheme://user:password@host:port); a stored one is kept only for the same proxy "
        "and user."
    }


def oauth_client_apply(*, client: OAuthClient, values: Mapping[str, Any]) -> None:
    """Set the fields given in `values` (OAUTH_CLIENT_FIELDS; None restores a field's
    default), writing nothing."""
    unknown = sorted(set(values) - set(OAUTH_CLIENT_FIELDS))
    if unknown:
        raise Invalid(dict.fromkeys(unknown, "not a field of an OAuth client"))
    for name, value in values.items():
        if name == "secret_expires_at" and isinstance(value, datetime):
            value = value if timezone.is_aware(value) else timezone.make_aware(value)
        setattr(client, name, value if value is not None else _default(name))
    if not client.scope_separator:
        client.scope_separator = " "


def _default(name: str) -> Any:
    field = OAuthClient._meta.get_field(name)
    return field.get_default() if isinstance(field, models.Field) else None


def oauth_client_errors(*, client: OAuthClient) -> dict[str, str]:
    """Every field error of `client` as it stands: the model's own rules, then how the fields
    go together (OIDC discovery where it applies). Raises Conflict when its name is taken."""
    taken = OAuthClient.objects.filter(name=client.name).exclude(pk=client.pk)
    if client.name and taken.exists():
        raise Conflict(f"An OAuth client named {client.name!r} exists already.")
    errors = model_errors(client, exclude=["client_secret", "metadata"])
    for name, problem in oauth_client_check(client=client).items():
        errors.setdefault(name, problem)
    return errors


def oauth_client_save(
    *, client: OAuthClient, client_secret: str | None = None, actor: Actor = SYSTEM
) -> OAuthClient:
    """Create or update `client` as it stands, once every rule holds; a non-empty
    `client_secret` replaces the stored one.

    A change of where the client's secrets go (its endpoints, issuer, tenant, provider, proxy,
    or TLS verification switched off) clears the stored client secret unless this change
    gives it again, and drops the tokens of every grant of the client, which must be
    validated again: whoever may change a client must not be able to pull its secrets out by
    pointing it elsewhere. ``client.save_notice`` then says so."""
    errors = oauth_client_errors(client=client)
    if errors:
        raise Invalid(errors)
    stored = _stored(client)
    retargeted = stored is not None and _retargeted(client=client, stored=stored)
    if client_secret:
        client.client_secret = client_secret  # type: ignore[assignment]  # sealed on save
    creating = client.pk is None
    notes = ["client secret replaced"] if client_secret and not creating else []
    client.save_notice = ""
    with transaction.atomic():
        if retargeted:
            assert stored is not None
            client.save_notice = _secrets_drop(
                client=client,
                had_secret=bool(stored.client_secret),
                secret_given=bool(client_secret),
            )
            notes.append(client.save_notice)
        client.save()
        _health_follow(client=client, fixed=True)
        audit_record(
            actor=actor,
            target=client,
            action=AuditAction.OAUTH_CLIENT_CREATED
            if creating
            else AuditAction.OAUTH_CLIENT_UPDATED,
            message="; ".join(notes),
        )
    return client


def _destinations(client: OAuthClient) -> tuple[Any, ...]:
    """Everywhere the client sends a secret or a token, or lets a browser sign in."""
    try:
        found = oauth_client_endpoints(client=client)
        urls: tuple[str, ...] = (
            found.authorize_url,
            found.token_url,
            found.userinfo_url,
            found.jwks_uri,
            found.issuer,
        )
    except EndpointsMissing:
        urls = ()
    return (urls, proxy_destination(client.proxy) if client.proxy else None)


def _retargeted(*, client: OAuthClient, stored: OAuthClient) -> bool:
    if stored.verify_ssl and not client.verify_ssl:
        return True
    return _destinations(client) != _destinations(stored)


def _secrets_drop(*, client: OAuthClient, had_secret: bool, secret_given: bool) -> str:
    """Clear what the change did not give again; a refresh token cannot be given again, so
    every grant's tokens go. Returns the sentence that tells so."""
    parts = []
    if had_secret and not secret_given:
        client.client_secret = None
        parts.append("the stored client secret was cleared (give it again with such a change)")
    dropped = grant_tokens_drop(
        grants=Grant.objects.filter(client=client),
        reason="The client's endpoints, proxy or TLS verification changed: validate again.",
    )
    if dropped:
        parts.append(f"{dropped} grant(s) lost their tokens and must be validated again")
    if not parts:
        return ""
    return "Where this client sends its secrets changed: " + "; ".join(parts) + "."


def oauth_client_set_status(
    *, client: OAuthClient, status: str, actor: Actor = SYSTEM
) -> OAuthClient:
    with transaction.atomic():
        client.status = status
        client.save(update_fields=["status", "updated_at"])
        _health_follow(client=client, fixed=False)
        audit_record(actor=actor, target=client, action=AuditAction(f"oauth_client.{status}"))
    return client


def oauth_client_delete(*, client: OAuthClient, actor: Actor = SYSTEM) -> None:
    """Delete `client` and its grants; refused, changing nothing, while anything that uses it
    (a mailbox) protects it."""
    try:
        with transaction.atomic():
            audit_record(actor=actor, target=client, action=AuditAction.OAUTH_CLIENT_DELETED)
            client.delete()
    except ProtectedError as exc:
        raise InUse(f"{users_of(exc, what='client')}: change or delete them first.") from None


# --- health: the client secret's expiry, a disabled client, and the grants that follow -----

SECRET_WARNING_DAYS = 30
_SECRET_REASONS = ("client.secret_expiring", "client.secret_expired")


def _expiry_health(*, client: OAuthClient, now: datetime) -> tuple[Health, str, str] | None:
    """The health the client's status and secret expiry give it (health, reason, hint); None
    when they say nothing (enabled, and no expiry within SECRET_WARNING_DAYS)."""
    if not client.is_enabled:
        reason = reason_of("client.disabled")
        return reason.health, reason.code, reason.hint
    expires = client.secret_expires_at
    if expires is None or expires > now + timedelta(days=SECRET_WARNING_DAYS):
        return None
    where = get_provider(client.provider).secret_location
    on = f"{expires:%Y-%m-%d}"
    if expires <= now:
        return (
            Health.FAILING,
            "client.secret_expired",
            f"The client secret expired on {on}: create a new one ({where}) and enter it, "
            "with its new expiry, on this client.",
        )
    days = max(1, math.ceil((expires - now) / timedelta(days=1)))
    return (
        Health.WARNING,
        "client.secret_expiring",
        f"The client secret expires in {days} day{'s' if days != 1 else ''} (on {on}): create "
        f"a new one ({where}) and enter it, with its new expiry, on this client.",
    )


def _client_health_update(*, client: OAuthClient, now: datetime, fixed: bool) -> list[str]:
    """Move the client to the health its status and expiry give it; a health those gave it
    before (or, when the client was just saved, `fixed`, a refusal that was its fault) ends
    when they no longer do. The changed fields."""
    found = _expiry_health(client=client, now=now)
    if found is not None:
        health, code, hint = found
        return client.health_set(health=health, reason=code, hint=hint, now=now)
    ends = (*_SECRET_REASONS, "client.disabled")
    if client.health_reason in ends or (fixed and client.health_reason.startswith("client.")):
        return client.health_succeeded(now=now)
    return []


def _health_follow(*, client: OAuthClient, fixed: bool) -> None:
    """After a save or a status change: the client's health, and its grants'. A disabled
    client's grants are disabled (not refreshed); enabled again, or saved after a refusal that
    was the client's fault (a new secret), they are refreshed at once to find out."""
    now = timezone.now()
    changed = _client_health_update(client=client, now=now, fixed=fixed)
    if changed:
        client.save(update_fields=changed)
    grants = Grant.objects.filter(client=client)
    if not client.is_enabled:
        reason = reason_of("client.disabled")
        grants.exclude(health=Health.DISABLED.value).update(
            health=Health.DISABLED.value,
            health_reason=reason.code,
            health_hint=reason.hint,
            health_since=now,
            next_refresh_at=None,
        )
        return
    # Saved: whatever was the client's fault may be fixed (a refresh finds out).
    waking = Q(health_reason="client.disabled") | (Q(state=Grant.State.ERROR) if fixed else Q())
    grants.filter(waking, state__in=[Grant.State.AUTHORIZED, Grant.State.ERROR]).exclude(
        token_set=""
    ).update(
        state=Grant.State.AUTHORIZED,
        health=Health.OK.value,
        health_reason="",
        health_hint="",
        health_since=now,
        consecutive_failures=0,
        next_refresh_at=now,
    )


def oauth_clients_check_secret_expiry(*, now: datetime) -> int:
    """Keep every client's secret-expiry health current (one query; a write only where it
    changes, at most daily as the days left count down); how many changed."""
    horizon = now + timedelta(days=SECRET_WARNING_DAYS)
    candidates = OAuthClient.objects.filter(
        Q(secret_expires_at__lte=horizon) | Q(health_reason__in=_SECRET_REASONS)
    )
    changed_count = 0
    for client in candidates:
        changed = _client_health_update(client=client, now=now, fixed=False)
        if changed:
            client.save(update_fields=changed)
            changed_count += 1
    return changed_count
