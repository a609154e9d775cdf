"""/authorizations: how a started Validate ended."""

from typing import Any

from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from ninja import Router

from mailgrant.api.auth import scope
from mailgrant.api.errors import answers
from mailgrant.api.schemas import (
    AuthorizationOut,
    ObjectId,
)
from mailgrant.oauth.models import PendingAuthorization

router = Router(tags=["oauth-clients"])


@router.get(
    "/{authorization_id}",
    response=answers({200: AuthorizationOut}, 404),
    auth=scope("read", perm="oauth.view_pendingauthorization"),
)
def get_authorization(request: HttpRequest, authorization_id: ObjectId) -> Any:
    pending = get_object_or_404(PendingAuthorization, pk=authorization_id)
    return {
        "id": pending.pk,
        "client_id": pending.client_id,
        "outcome": pending.outcome,
        "message": pending.message,
        "grant_id": pending.result_grant_id,
        "expires_at": pending.expires_at,
    }
