"""Reads: what a client resolves to, which grant to use, what the admin lists."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import QuerySet
from django.urls import reverse

from mailgrant.common import sql
from mailgrant.common.fields import reveal
from mailgrant.common.http import (
    PROXY_PASSWORD_MASK,
    HttpSettings,
    proxy_password_of,
    proxy_with_password,
)
from mailgrant.oauth.models import Grant, OAuthClient, PendingAuthorization
from mailgrant.oauth.protocol import Credentials
from mailgrant.providers import get_provider


class EndpointsMissing(Exception):
    pass


@dataclass(frozen=True)
class Endpoints:
    """Everything a flow needs to know about where and how to talk to the provider."""

    authorize_url: str
    token_url: str
    scopes: tuple[str, ...]
    scope_separator: str
    authorize_params: Mapping[str, str] = field(default_factory=dict)
    userinfo_url: str = ""
    jwks_uri: str = ""
    issuer: str = ""  # may hold "{tenantid}" (Microsoft multi-tenant)
    iss_parameter_supported: bool = False


def oauth_client_redirect_uri(*, client: OAuthClient) -> str:
    """Built from MAILGRANT_BASE_URL, never from the request's Host header."""
    path = reverse("oauth:callback", kwargs={"client_id": client.pk})
    return f"{settings.MAILGRANT_BASE_URL}{path}"


def oauth_client_http(*, client: OAuthClient) -> HttpSettings:
    """How to reach the client's provider, the proxy's sealed password put back in its URL."""
    proxy = client.proxy
    if proxy_password_of(proxy) == PROXY_PASSWORD_MASK:
        proxy = proxy_with_password(proxy, reveal(client.proxy_password))
    return HttpSettings(
        proxy=proxy, verify=client.verify_ssl, timeout=settings.MAILGRANT_HTTP_TIMEOUT
    )


def oauth_client_credentials(*, client: OAuthClient) -> Credentials:
    provider = get_provider(client.provider)
    method = provider.token_endpoint_auth_method
    supported = client.metadata.get("token_endpoint_auth_methods") or []
    if supported and method not in supported and "client_secret_post" in supported:
        method = "client_secret_post"
    secret = reveal(client.client_secret)
    return Credentials(client_id=client.client_id, client_secret=secret, auth_method=method)


def oauth_client_scopes(*, client: OAuthClient) -> tuple[str, ...]:
    if client.scope.strip():
        separator = client.scope_separator or " "
        parts = client.scope.split(separator) if separator.strip() else client.scope.split()
        return tuple(p.strip() for p in parts if p.strip())
    return get_provider(client.provider).default_scopes(client.type)


def oauth_client_endpoints(*, client: OAuthClient) -> Endpoints:
    """The client's endpoints: its own fields first, then discovery's, then the preset's."""
    provider = get_provider(client.provider)
    tenant = (client.tenant or provider.default_tenant).strip()
    meta = client.metadata or {}

    def preset(template: str) -> str:
        return template.replace("{tenant}", tenant)

    authorize_url = (
        client.authorize_url or meta.get("authorization_endpoint") or preset(provider.authorize_url)
    )
    token_url = client.token_url or meta.get("token_endpoint") or preset(provider.token_url)
    if not authorize_url or not token_url:
        raise EndpointsMissing(
            "The client has no authorize or token URL: enter them, or an issuer to discover "
            "them from."
        )
    scopes = oauth_client_scopes(client=client)
    params = dict(provider.extra_authorize_params(client.type))
    if "offline_access" in scopes and provider.uses_discovery:
        # OpenID Connect Core 11: offline_access is honoured only with prompt=consent.
        params.setdefault("prompt", "consent")
    issuer = provider.issuer_for(issuer=meta.get("issuer") or provider.issuer, tenant=tenant)
    return Endpoints(
        authorize_url=authorize_url,
        token_url=token_url,
        scopes=scopes,
        scope_separator=client.scope_separator or " ",
        authorize_params=params,
        userinfo_url=client.userinfo_endpoint
        or meta.get("userinfo_endpoint")
        or preset(provider.userinfo_url),
        jwks_uri=meta.get("jwks_uri") or preset(provider.jwks_uri),
        issuer=issuer,
        iss_parameter_supported=bool(meta.get("iss_parameter_supported")),
    )


def oauth_client_authorize_url(*, client: OAuthClient) -> str:
    """Where Validate sends the browser (empty while the client has no endpoints)."""
    try:
        return oauth_client_endpoints(client=client).authorize_url
    except EndpointsMissing:
        return ""


def grant_default_for(*, client: OAuthClient) -> Grant | None:
    return client.grants.filter(is_default=True).first()


def oauth_client_get_by_name(*, name: str) -> OAuthClient:
    return OAuthClient.objects.get(name=name)


def oauth_client_list(
    *, provider: str | None = None, type: str | None = None, status: str | None = None
) -> QuerySet[OAuthClient]:
    clients = OAuthClient.objects.all()
    if provider:
        clients = clients.filter(provider=provider)
    if type:
        clients = clients.filter(type=type)
    if status:
        clients = clients.filter(status=status)
    return clients


def authorization_purpose(*, client_id: int, state: str) -> str | None:
    """What a provider's answer belongs to (Validate, API, sign-in), before consuming it."""
    if not state:
        return None
    state_hash = hashlib.sha256(state.encode()).hexdigest()
    return (
        PendingAuthorization.objects.filter(state_hash=state_hash, client_id=client_id)
        .values_list("purpose", flat=True)
        .first()
    )


def grant_list(*, client: OAuthClient | None = None) -> QuerySet[Grant]:
    grants = Grant.objects.select_related("client")
    return grants.filter(client=client) if client is not None else grants


def grant_get(*, grant_id: int) -> Grant:
    return Grant.objects.select_related("client").get(pk=grant_id)


def grant_get_for_refresh(*, grant_id: int) -> Grant:
    """`grant_get` as one SELECT through the driver (common.sql), for the refresh's hot path:
    the ORM's query building and row handling cost several times the statement. Every value
    goes through the converters the ORM would apply (the database's, then the field's: the
    sealed token set, datetimes, the client's metadata), so the instances are the same."""
    connection = connections[DEFAULT_DB_ALIAS]
    read = _grant_read(connection.vendor)
    row = sql.execute(read.sql, [grant_id]).fetchone()
    if row is None:
        raise Grant.DoesNotExist(f"No grant {grant_id}.")
    values = list(row)
    for position, converters, column in _grant_read_converters(connection):
        value = values[position]
        for converter in converters:
            value = converter(value, column, connection)
        values[position] = value
    split = len(read.grant_names)
    grant = Grant.from_db(DEFAULT_DB_ALIAS, read.grant_names, values[:split])
    client = OAuthClient.from_db(DEFAULT_DB_ALIAS, read.client_names, values[split:])
    Grant._meta.get_field("client").set_cached_value(grant, client)  # type: ignore[union-attr]
    return grant


@dataclass(frozen=True)
class _GrantRead:
    sql: str
    grant_names: list[str]
    client_names: list[str]
    columns: list[Any]  # the Col expressions, for the converters


@functools.cache
def _grant_read(vendor: str) -> _GrantRead:
    ops = connections[DEFAULT_DB_ALIAS].ops

    def qn(name: str | None) -> str:
        return ops.quote_name(str(name))

    grants, clients = Grant._meta, OAuthClient._meta
    grant_fields, client_fields = list(grants.concrete_fields), list(clients.concrete_fields)
    selected = [f"g.{qn(f.column)}" for f in grant_fields]
    selected += [f"c.{qn(f.column)}" for f in client_fields]
    client_id = qn(grants.get_field("client").column)  # type: ignore[union-attr]
    statement = (
        f"SELECT {', '.join(selected)} FROM {qn(grants.db_table)} g "  # noqa: S608
        f"JOIN {qn(clients.db_table)} c ON c.{qn(clients.pk.column)} = g.{client_id} "
        f"WHERE g.{qn(grants.pk.column)} = %s"
    )
    return _GrantRead(
        sql=statement,
        grant_names=[f.attname for f in grant_fields],
        client_names=[f.attname for f in client_fields],
        columns=[f.get_col("g") for f in grant_fields] + [f.get_col("c") for f in client_fields],
    )


@functools.lru_cache(maxsize=256)
def _grant_read_converters(connection: Any) -> list[tuple[int, list[Any], Any]]:
    """Per connection (a thread's own), as the ORM's compiler lists them: the backend's
    converters of each column, then its field's."""
    read = _grant_read(connection.vendor)
    plan = []
    for position, column in enumerate(read.columns):
        converters = connection.ops.get_db_converters(column) + column.get_db_converters(connection)
        if converters:
            plan.append((position, converters, column))
    return plan


def authorization_get(*, authorization_id: int) -> PendingAuthorization:
    return PendingAuthorization.objects.get(pk=authorization_id)


# What an administrator may see of a client: every field of the form but the secret, whose
# presence alone is told (the sign-in settings of a user-type client are sso's). The API and the
# command line show the same thing.
OAUTH_CLIENT_FIELDS = (
    "name",
    "provider",
    "type",
    "client_id",
    "tenant",
    "issuer",
    "scope",
    "authorize_url",
    "token_url",
    "proxy",
    "verify_ssl",
    "status",
    "scope_separator",
    "userinfo_endpoint",
    "secret_expires_at",
)
GRANT_FIELDS = (
    "client_id",
    "account",
    "state",
    "is_default",
    "scope",
    "expires_at",
    "authorized_at",
    "last_refresh_at",
    "last_error",
)


def oauth_client_public(*, client: OAuthClient) -> dict[str, Any]:
    return {
        "id": client.pk,
        **{name: getattr(client, name) for name in OAUTH_CLIENT_FIELDS},
        "has_client_secret": bool(client.client_secret),
        "redirect_uri": oauth_client_redirect_uri(client=client),
        "created_at": client.created_at,
        "updated_at": client.updated_at,
    }


def grant_public(*, grant: Grant) -> dict[str, Any]:
    """A grant without its tokens."""
    return {"id": grant.pk, **{name: getattr(grant, name) for name in GRANT_FIELDS}}
