"""/messages: a fetched message's raw bytes."""

from typing import Any

from django.http import FileResponse, HttpRequest
from django.shortcuts import get_object_or_404
from ninja import Router

from mailgrant.api.auth import scope
from mailgrant.api.errors import ApiError, answers
from mailgrant.api.schemas import (
    ObjectId,
)
from mailgrant.mailboxes.models import Message
from mailgrant.mailboxes.store import store_root

router = Router(tags=["mailboxes"])


@router.get(
    "/{message_id}/raw",
    auth=scope("read", perm="mailboxes.view_message"),
    response=answers({200: None}, 404),
    openapi_extra={
        "responses": {
            200: {
                "description": "The message as fetched (RFC 822 bytes)",
                "content": {"message/rfc822": {"schema": {"type": "string", "format": "binary"}}},
            }
        }
    },
)
def message_raw(request: HttpRequest, message_id: ObjectId) -> Any:
    message = get_object_or_404(Message, pk=message_id)
    path = store_root() / message.path
    if not path.is_file():
        raise ApiError(404, "not_found", "The message's file is missing from the store.")
    response = FileResponse(path.open("rb"), content_type="message/rfc822")
    response["Content-Disposition"] = f'attachment; filename="message-{message.pk}.eml"'
    return response
