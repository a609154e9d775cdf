"""OAuth clients: checked (OIDC discovery where it applies), saved, enabled or disabled, deleted."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from django.db import transaction

from mailgrant.common.audit import actor_for, audit_record
from mailgrant.common.http import ProxyError, validate_proxy
from mailgrant.oauth import protocol
from mailgrant.oauth.errors import InUse, OAuthClientInvalid
from mailgrant.oauth.models import OAuthClient
from mailgrant.oauth.protocol import ProviderError
from mailgrant.oauth.selectors import (
    oauth_client_http,
)
from mailgrant.providers import get_provider
from mailgrant.sandbox.expression import ExpressionSyntaxError, expression_compile
from mailgrant.sso.claims import ClaimPathError, claim_path_parse, user_fields_check
from mailgrant.sso.icons import icon_name_check


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
