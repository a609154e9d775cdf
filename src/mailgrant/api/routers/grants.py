"""/grants: the grants and the token broker."""

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from ninja import Query, Router, Status
from ninja.pagination import paginate

from mailgrant.api.auth import scope
from mailgrant.api.errors import PEER, answers
from mailgrant.api.inputs import optional_body, request_actor
from mailgrant.api.schemas import (
    GrantOut,
    ObjectId,
    Pagination,
    TokenOut,
    TokenRequest,
    token_body,
)
from mailgrant.oauth.models import Grant, OAuthClient
from mailgrant.oauth.selectors import grant_list
from mailgrant.oauth.services.grants import grant_delete, grant_set_default
from mailgrant.oauth.services.tokens import access_token_issue, grant_refresh

router = Router(tags=["grants"])


@router.post(
    "/{grant_id}/access-token",
    response=answers({200: TokenOut}, 404, *PEER),
    auth=scope("tokens", perm="oauth.issue_token"),
)
def broker(
    request: HttpRequest,
    grant_id: ObjectId,
    response: HttpResponse,
    min_valid_seconds: int = Query(0, ge=0, le=86400),
) -> Any:
    """A valid access token of the grant, refreshed if it expires within `min_valid_seconds`
    (query string, or a JSON body `{"min_valid_seconds": N}`; an empty body is fine)."""
    body = optional_body(request, TokenRequest)
    if body is not None:
        min_valid_seconds = body.min_valid_seconds
    tokens = access_token_issue(
        grant_id=grant_id,
        min_valid_seconds=min_valid_seconds,
        actor=request_actor(request),
    )
    response["Cache-Control"] = "no-store"
    return token_body(tokens)


@router.get(
    "",
    response=answers({200: list[GrantOut]}, 404),
    auth=scope("read", perm="oauth.view_grant"),
)
@paginate(Pagination)
def list_all_grants(request: HttpRequest, client_id: ObjectId | None = None) -> Any:
    client = get_object_or_404(OAuthClient, pk=client_id) if client_id is not None else None
    return grant_list(client=client)


@router.get(
    "/{grant_id}",
    response=answers({200: GrantOut}, 404),
    auth=scope("read", perm="oauth.view_grant"),
)
def get_grant(request: HttpRequest, grant_id: ObjectId) -> Any:
    return get_object_or_404(Grant, pk=grant_id)


@router.post(
    "/{grant_id}/refresh",
    response=answers({200: GrantOut}, 404, *PEER),
    auth=scope("write", perm="oauth.change_grant"),
)
def refresh_grant(request: HttpRequest, grant_id: ObjectId) -> Any:
    return grant_refresh(grant=get_object_or_404(Grant, pk=grant_id), actor=request_actor(request))


@router.post(
    "/{grant_id}/default",
    response=answers({200: GrantOut}, 404),
    auth=scope("write", perm="oauth.change_grant"),
)
def set_default_grant(request: HttpRequest, grant_id: ObjectId) -> Any:
    """Make this grant the one its client uses wherever no grant is named."""
    return grant_set_default(
        grant=get_object_or_404(Grant, pk=grant_id), actor=request_actor(request)
    )


@router.delete(
    "/{grant_id}",
    response=answers({204: None}, 404, 409),
    auth=scope("write", perm="oauth.delete_grant"),
)
def delete_grant(request: HttpRequest, grant_id: ObjectId) -> Any:
    grant_delete(grant=get_object_or_404(Grant, pk=grant_id), actor=request_actor(request))
    return Status(204, None)
