"""/mailboxes: the mailboxes, their Authorize, Test connection, fetch, messages and send."""

import base64
import binascii
from typing import Any

from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from ninja import Router, Status
from ninja.pagination import paginate

from mailgrant.api.auth import scope
from mailgrant.api.errors import PEER, answers
from mailgrant.api.inputs import request_actor
from mailgrant.api.schemas import (
    FetchOut,
    MailboxCreate,
    MailboxOut,
    MailboxPatch,
    MessageOut,
    ObjectId,
    Pagination,
    SendIn,
    SendOut,
    TestOut,
    ValidateOut,
    started_authorization_out,
)
from mailgrant.common.errors import Invalid
from mailgrant.mailboxes.models import Mailbox, Message
from mailgrant.mailboxes.protocol.compose import Attachment
from mailgrant.mailboxes.services.fetch_now import mailbox_fetch_now
from mailgrant.mailboxes.services.mailboxes import (
    mailbox_authorize_start,
    mailbox_create,
    mailbox_delete,
    mailbox_update,
)
from mailgrant.mailboxes.services.send import mailbox_send, mailbox_send_message
from mailgrant.mailboxes.services.test import mailbox_test

router = Router(tags=["mailboxes"])


def _mailbox_out(mailbox: Mailbox) -> dict[str, Any]:
    data = {
        f: getattr(mailbox, f)
        for f in MailboxOut.model_fields
        if hasattr(mailbox, f) and f not in ("oauth_client", "grant")
    }
    data.update(
        id=mailbox.pk,
        has_password=bool(mailbox.password),
        oauth_client=mailbox.oauth_client_id,
        grant=mailbox.grant_id,
        next_attempt_at=mailbox.next_poll_at,
    )
    return data


@router.get(
    "",
    response=answers({200: list[MailboxOut]}),
    auth=scope("read", perm="mailboxes.view_mailbox"),
)
@paginate(Pagination)
def list_mailboxes(request: HttpRequest) -> Any:
    return [_mailbox_out(m) for m in Mailbox.objects.all()]


@router.post(
    "",
    response=answers({201: MailboxOut}, 409),
    auth=scope("write", perm="mailboxes.add_mailbox"),
)
def create_mailbox(request: HttpRequest, body: MailboxCreate) -> Any:
    data = body.model_dump(exclude_none=True)
    password = data.pop("password", None)
    saved = mailbox_create(values=data, password=password, actor=request_actor(request))
    return Status(201, {**_mailbox_out(saved), "notice": saved.save_notice})


@router.get(
    "/{mailbox_id}",
    response=answers({200: MailboxOut}, 404),
    auth=scope("read", perm="mailboxes.view_mailbox"),
)
def get_mailbox(request: HttpRequest, mailbox_id: ObjectId) -> Any:
    return _mailbox_out(get_object_or_404(Mailbox, pk=mailbox_id))


@router.patch(
    "/{mailbox_id}",
    response=answers({200: MailboxOut}, 404, 409),
    auth=scope("write", perm="mailboxes.change_mailbox"),
)
def update_mailbox(request: HttpRequest, mailbox_id: ObjectId, body: MailboxPatch) -> Any:
    """Change the fields sent. A new host, port or security needs `password` sent with it
    (400 otherwise); an OAuth mailbox then needs authorizing again, as `notice` says."""
    mailbox = get_object_or_404(Mailbox, pk=mailbox_id)
    data = body.model_dump(exclude_unset=True)
    password = data.pop("password", None)
    updated = mailbox_update(
        mailbox=mailbox, values=data, password=password, actor=request_actor(request)
    )
    return {**_mailbox_out(updated), "notice": updated.save_notice}


@router.delete(
    "/{mailbox_id}",
    response=answers({204: None}, 404, 409),
    auth=scope("write", perm="mailboxes.delete_mailbox"),
)
def delete_mailbox(request: HttpRequest, mailbox_id: ObjectId) -> Any:
    mailbox_delete(mailbox=get_object_or_404(Mailbox, pk=mailbox_id), actor=request_actor(request))
    return Status(204, None)


@router.post(
    "/{mailbox_id}/authorize",
    response=answers({201: ValidateOut}, 404, *PEER),
    auth=scope("write", perm="mailboxes.change_mailbox"),  # as the admin's Authorize
)
def authorize_mailbox(request: HttpRequest, mailbox_id: ObjectId) -> Any:
    """Validate the mailbox's own account (a grant of its client, its address as login hint);
    completes in any browser, polled like a client's Validate."""
    mailbox = get_object_or_404(Mailbox.objects.select_related("grant"), pk=mailbox_id)
    started = mailbox_authorize_start(mailbox=mailbox, actor=request_actor(request), purpose="api")
    return Status(201, started_authorization_out(started))


@router.post(
    "/{mailbox_id}/test",
    response=answers({200: TestOut}, 404, *PEER),
    auth=scope("write", perm="mailboxes.change_mailbox"),  # as the admin's Test connection
)
def test_mailbox(request: HttpRequest, mailbox_id: ObjectId) -> Any:
    result = mailbox_test(
        mailbox=get_object_or_404(Mailbox, pk=mailbox_id), actor=request_actor(request)
    )
    return {
        **result.__dict__,
        "capabilities": list(result.capabilities),
        "mechanisms": list(result.mechanisms),
    }


@router.post(
    "/{mailbox_id}/fetch",
    response=answers({200: FetchOut}, 404, 409, *PEER),
    auth=scope("write", perm="mailboxes.change_mailbox"),  # as the admin's Fetch now
)
def fetch_mailbox(request: HttpRequest, mailbox_id: ObjectId) -> Any:
    return mailbox_fetch_now(
        mailbox=get_object_or_404(Mailbox, pk=mailbox_id), actor=request_actor(request)
    )


@router.get(
    "/{mailbox_id}/messages",
    response=answers({200: list[MessageOut]}, 404),
    auth=scope("read", perm="mailboxes.view_message"),
    by_alias=True,
)
@paginate(Pagination)
def list_messages(request: HttpRequest, mailbox_id: ObjectId) -> Any:
    mailbox = get_object_or_404(Mailbox, pk=mailbox_id)
    return Message.objects.filter(mailbox=mailbox).order_by("-fetched_at", "-id")


@router.post(
    "/{mailbox_id}/send",
    response=answers({200: SendOut}, 404, *PEER),
    auth=scope("write", perm="mailboxes.send_message"),
)
def send_mailbox(request: HttpRequest, mailbox_id: ObjectId, body: SendIn) -> Any:
    mailbox = get_object_or_404(Mailbox, pk=mailbox_id)
    if body.raw:
        result = mailbox_send(
            mailbox=mailbox,
            recipients=[*body.to, *body.cc, *body.bcc],
            raw=_base64("raw", body.raw),
            sender=body.sender,
            actor=request_actor(request),
        )
    else:
        attachments = [
            Attachment(a.filename, _base64("attachments", a.content_base64), a.content_type)
            for a in body.attachments
        ]
        result = mailbox_send_message(
            mailbox=mailbox,
            to=body.to,
            cc=body.cc,
            bcc=body.bcc,
            subject=body.subject,
            text=body.text,
            html=body.html,
            attachments=attachments,
            sender=body.sender,
            actor=request_actor(request),
        )
    return {"accepted": result.accepted, "refused": result.refused, "reply": result.reply}


def _base64(field: str, text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise Invalid({field: "base64 expected"}) from None
