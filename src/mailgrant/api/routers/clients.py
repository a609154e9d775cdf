"""/oauth-clients: the clients, their Validate, refresh and grants."""

from typing import Any

from django.db import models
from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from ninja import Router, Status
from ninja.pagination import paginate

from mailgrant.api.auth import scope
from mailgrant.api.errors import PEER, ApiError, answers
from mailgrant.api.inputs import optional_body, request_user
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
    started_authorization_out,
)
from mailgrant.directory.models import LdapDirectory
from mailgrant.oauth.models import Grant, OAuthClient
from mailgrant.oauth.selectors import grant_list, oauth_client_list, oauth_client_public
from mailgrant.oauth.services.authorization import authorization_start
from mailgrant.oauth.services.clients import oauth_client_delete, oauth_client_save
from mailgrant.oauth.services.tokens import grant_refresh

router = Router(tags=["oauth-clients"])


def _default(model: type[OAuthClient], field: str) -> Any:
    found = model._meta.get_field(field)
    return found.get_default() if isinstance(found, models.Field) else None


def _client_out(client: OAuthClient) -> dict[str, Any]:
    return oauth_client_public(client=client)


@router.get("", response=answers({200: list[OAuthClientOut]}), auth=scope("read"))
@paginate(Pagination)
def list_clients(
    request: HttpRequest,
    provider: ProviderName | None = None,
    type: ClientType | None = None,
    status: ClientStatus | None = None,
) -> Any:
    return [_client_out(c) for c in oauth_client_list(provider=provider, type=type, status=status)]


@router.post("", response=answers({201: OAuthClientOut}, 409), auth=scope("write"))
def create_client(request: HttpRequest, body: OAuthClientCreate) -> Any:
    data = body.model_dump(exclude_none=True)
    secret = data.pop("client_secret", None)
    directories = _directories(data.pop("related_ldaps", None))
    if OAuthClient.objects.filter(name=data["name"]).exists():
        raise ApiError(409, "conflict", f"An OAuth client named {data['name']!r} exists.")
    client = OAuthClient(**data)
    client.full_clean(exclude=["client_secret", "metadata"])
    saved = oauth_client_save(
        client=client, client_secret=secret, related_ldaps=directories, user=request_user(request)
    )
    return Status(201, _client_out(saved))


@router.get("/{client_id}", response=answers({200: OAuthClientOut}, 404), auth=scope("read"))
def get_client(request: HttpRequest, client_id: ObjectId) -> Any:
    return _client_out(get_object_or_404(OAuthClient, pk=client_id))


@router.patch(
    "/{client_id}", response=answers({200: OAuthClientOut}, 404, 409), auth=scope("write")
)
def update_client(request: HttpRequest, client_id: ObjectId, body: OAuthClientPatch) -> Any:
    client = get_object_or_404(OAuthClient, pk=client_id)
    data = body.model_dump(exclude_unset=True)
    secret = data.pop("client_secret", None)
    directories = _directories(data.pop("related_ldaps", None)) if "related_ldaps" in data else None
    for field, value in data.items():
        # null clears a field: its default ({} for user fields), never a value of another type
        setattr(client, field, value if value is not None else _default(OAuthClient, field))
    if (
        "name" in data
        and OAuthClient.objects.filter(name=client.name).exclude(pk=client.pk).exists()
    ):
        raise ApiError(409, "conflict", f"An OAuth client named {client.name!r} exists.")
    client.full_clean(exclude=["client_secret", "metadata"])
    saved = oauth_client_save(
        client=client, client_secret=secret, related_ldaps=directories, user=request_user(request)
    )
    return _client_out(saved)


def _directories(ids: list[int] | None) -> list[LdapDirectory]:
    """The LDAP directories a client names (null or absent: none); an unknown id is a 400."""
    wanted = set(ids or ())
    found = list(LdapDirectory.objects.filter(pk__in=wanted))
    missing = sorted(wanted - {d.pk for d in found})
    if missing:
        message = f"No LDAP directory with id {missing[0]}."
        raise ApiError(
            400,
            "validation_error",
            f"related_ldaps: {message}",
            fields=[{"field": "related_ldaps", "message": message}],
        )
    return found


@router.delete("/{client_id}", response=answers({204: None}, 404, 409), auth=scope("write"))
def delete_client(request: HttpRequest, client_id: ObjectId) -> Any:
    client = get_object_or_404(OAuthClient, pk=client_id)
    oauth_client_delete(client=client, user=request_user(request))
    return Status(204, None)


@router.post(
    "/{client_id}/validate",
    response=answers({201: ValidateOut}, 404, *PEER),
    auth=scope("write"),
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
        user=request_user(request),
        grant=grant,
        login_hint=body.login_hint if body else "",
    )
    return Status(201, started_authorization_out(started))


@router.post(
    "/{client_id}/refresh", response=answers({200: GrantOut}, 404, *PEER), auth=scope("write")
)
def refresh_client(request: HttpRequest, client_id: ObjectId) -> Any:
    grant = get_object_or_404(Grant, client_id=client_id, is_default=True)
    return grant_refresh(grant=grant, user=request_user(request))


@router.get("/{client_id}/grants", response=answers({200: list[GrantOut]}, 404), auth=scope("read"))
def list_grants(request: HttpRequest, client_id: ObjectId) -> Any:
    client = get_object_or_404(OAuthClient, pk=client_id)
    return list(grant_list(client=client))
