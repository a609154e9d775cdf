"""/oauth-clients: the clients, their Validate, refresh and grants."""

from typing import Any

from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from ninja import Router, Status
from ninja.pagination import paginate

from mailgrant.api.auth import scope
from mailgrant.api.errors import PEER, answers
from mailgrant.api.inputs import optional_body, request_actor
from mailgrant.api.schemas import (
    ClientStatus,
    ClientType,
    GrantOut,
    OAuthClientCreate,
    OAuthClientOut,
    OAuthClientPatch,
    ObjectId,
    Pagination,
    ProviderName,
    ValidateIn,
    ValidateOut,
    health_fields,
    started_authorization_out,
)
from mailgrant.oauth.models import Grant, OAuthClient
from mailgrant.oauth.selectors import grant_list, oauth_client_list
from mailgrant.oauth.services.authorization import authorization_start
from mailgrant.oauth.services.clients import oauth_client_delete
from mailgrant.oauth.services.tokens import grant_refresh
from mailgrant.sso.selectors import client_public, clients_with_sign_in
from mailgrant.sso.services.clients import client_create, client_update

router = Router(tags=["oauth-clients"])


def _client_out(client: OAuthClient) -> dict[str, Any]:
    return {**client_public(client=client), **health_fields(client)}


@router.get(
    "",
    response=answers({200: list[OAuthClientOut]}),
    auth=scope("read", perm="oauth.view_oauthclient"),
)
@paginate(Pagination)
def list_clients(
    request: HttpRequest,
    provider: ProviderName | None = None,
    type: ClientType | None = None,
    status: ClientStatus | None = None,
) -> Any:
    clients = oauth_client_list(provider=provider, type=type, status=status)
    return [_client_out(c) for c in clients_with_sign_in(clients)]


@router.post(
    "",
    response=answers({201: OAuthClientOut}, 409),
    auth=scope("write", perm="oauth.add_oauthclient"),
)
def create_client(request: HttpRequest, body: OAuthClientCreate) -> Any:
    data = body.model_dump(exclude_none=True)
    secret = data.pop("client_secret", None)
    client = client_create(values=data, client_secret=secret, actor=request_actor(request))
    return Status(201, {**_client_out(client), "notice": client.save_notice})


@router.get(
    "/{client_id}",
    response=answers({200: OAuthClientOut}, 404),
    auth=scope("read", perm="oauth.view_oauthclient"),
)
def get_client(request: HttpRequest, client_id: ObjectId) -> Any:
    return _client_out(get_object_or_404(OAuthClient, pk=client_id))


@router.patch(
    "/{client_id}",
    response=answers({200: OAuthClientOut}, 404, 409),
    auth=scope("write", perm="oauth.change_oauthclient"),
)
def update_client(request: HttpRequest, client_id: ObjectId, body: OAuthClientPatch) -> Any:
    """Change the fields sent. A change of where the client sends its secrets (an endpoint,
    issuer, tenant, provider or proxy, or verify_ssl switched off) clears the stored client
    secret unless `client_secret` is sent with it, and drops every grant's tokens (validate
    again); `notice` says so."""
    client = get_object_or_404(OAuthClient, pk=client_id)
    data = body.model_dump(exclude_unset=True)
    secret = data.pop("client_secret", None)
    # null restores a field's default ({} for user fields), never a value of another type.
    client_update(client=client, values=data, client_secret=secret, actor=request_actor(request))
    return {**_client_out(client), "notice": client.save_notice}


@router.delete(
    "/{client_id}",
    response=answers({204: None}, 404, 409),
    auth=scope("write", perm="oauth.delete_oauthclient"),
)
def delete_client(request: HttpRequest, client_id: ObjectId) -> Any:
    client = get_object_or_404(OAuthClient, pk=client_id)
    oauth_client_delete(client=client, actor=request_actor(request))
    return Status(204, None)


@router.post(
    "/{client_id}/validate",
    response=answers({201: ValidateOut}, 404, *PEER),
    auth=scope("write", perm="oauth.change_oauthclient"),  # as the admin's Validate
)
def validate_client(request: HttpRequest, client_id: ObjectId) -> Any:
    """Start a Validate that completes in any browser. An empty body validates the default
    grant; a JSON body may name another of this client's grants (`grant`) and preselect the
    account (`login_hint`)."""
    client = get_object_or_404(OAuthClient, pk=client_id)
    body = optional_body(request, ValidateIn)
    grant_id = body.grant if body else None
    grant = get_object_or_404(Grant, pk=grant_id, client=client) if grant_id else None
    started = authorization_start(
        client=client,
        purpose="api",
        actor=request_actor(request),
        grant=grant,
        login_hint=body.login_hint if body else "",
    )
    return Status(201, started_authorization_out(started))


@router.post(
    "/{client_id}/refresh",
    response=answers({200: GrantOut}, 404, *PEER),
    auth=scope("write", perm="oauth.change_grant"),  # as the admin's grant refresh
)
def refresh_client(request: HttpRequest, client_id: ObjectId) -> Any:
    grant = get_object_or_404(Grant, client_id=client_id, is_default=True)
    return grant_refresh(grant=grant, actor=request_actor(request))


@router.get(
    "/{client_id}/grants",
    response=answers({200: list[GrantOut]}, 404),
    auth=scope("read", perm="oauth.view_grant"),
)
def list_grants(request: HttpRequest, client_id: ObjectId) -> Any:
    client = get_object_or_404(OAuthClient, pk=client_id)
    return list(grant_list(client=client))
