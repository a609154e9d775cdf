"""OAuth clients: checked (OIDC discovery where it applies), saved, enabled or disabled, deleted."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db import models, transaction
from django.db.models import ProtectedError

from mailgrant.common.audit import SYSTEM, Actor, AuditAction, audit_record
from mailgrant.common.errors import Conflict, InUse, Invalid
from mailgrant.common.http import ProxyError, validate_proxy
from mailgrant.common.validation import model_errors, users_of
from mailgrant.oauth import protocol
from mailgrant.oauth.models import OAuthClient
from mailgrant.oauth.protocol import ProviderError
from mailgrant.oauth.selectors import OAUTH_CLIENT_FIELDS, oauth_client_http
from mailgrant.providers import get_provider


def oauth_client_check(*, client: OAuthClient) -> dict[str, str]:
    """Field errors of `client` as it stands, running OIDC discovery where it applies.

    On success the discovered metadata is left on ``client.metadata`` (not saved)."""
    errors: dict[str, str] = {}
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


def oauth_client_apply(*, client: OAuthClient, values: Mapping[str, Any]) -> None:
    """Set the fields given in `values` (OAUTH_CLIENT_FIELDS; None restores a field's
    default), writing nothing."""
    unknown = sorted(set(values) - set(OAUTH_CLIENT_FIELDS))
    if unknown:
        raise Invalid(dict.fromkeys(unknown, "not a field of an OAuth client"))
    for name, value in values.items():
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
    `client_secret` replaces the stored one."""
    errors = oauth_client_errors(client=client)
    if errors:
        raise Invalid(errors)
    if client_secret:
        client.client_secret = client_secret  # type: ignore[assignment]  # sealed on save
    creating = client.pk is None
    with transaction.atomic():
        client.save()
        audit_record(
            actor=actor,
            target=client,
            action=AuditAction.OAUTH_CLIENT_CREATED
            if creating
            else AuditAction.OAUTH_CLIENT_UPDATED,
            message="client secret replaced" if client_secret and not creating else "",
        )
    return client


def oauth_client_set_status(
    *, client: OAuthClient, status: str, actor: Actor = SYSTEM
) -> OAuthClient:
    with transaction.atomic():
        client.status = status
        client.save(update_fields=["status", "updated_at"])
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
