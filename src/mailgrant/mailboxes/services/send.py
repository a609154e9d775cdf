"""Sending through an outgoing mailbox."""

from __future__ import annotations

from collections.abc import Sequence

from django.db import transaction
from django.utils import timezone

from mailgrant.common.audit import SYSTEM, Actor, AuditAction, audit_record
from mailgrant.common.errors import Invalid, NeedsAdmin, ServiceError
from mailgrant.common.events import event_record
from mailgrant.mailboxes.health import mailbox_failure_of
from mailgrant.mailboxes.models import Mailbox
from mailgrant.mailboxes.protocol.compose import (
    Attachment,
    MessageInvalid,
    check_addresses,
    compose,
    crlf,
)
from mailgrant.mailboxes.protocol.smtp import SendResult, SmtpClient
from mailgrant.mailboxes.protocol.transport import (
    Login,
    MailError,
)
from mailgrant.mailboxes.services.login import (
    mailbox_endpoint,
    mailbox_error_of,
    with_mailbox_login,
)
from mailgrant.mailboxes.services.outcome import mailbox_health_record
from mailgrant.mailboxes.store import envelope


def mailbox_send(
    *,
    mailbox: Mailbox,
    recipients: Sequence[str],
    raw: bytes,
    sender: str | None = None,
    actor: Actor = SYSTEM,
) -> SendResult:
    """Send raw RFC 822 bytes to `recipients` (envelope: To, Cc and Bcc alike), with CRLF
    line ends whatever `raw` has."""
    if mailbox.protocol != Mailbox.Protocol.SMTP:
        raise NeedsAdmin("Only outgoing (SMTP) mailboxes send.", code="config")
    if not recipients:
        raise Invalid({"recipients": "A message needs at least one recipient."})
    try:
        check_addresses("recipients", recipients)
        if sender:
            check_addresses("sender", [sender])
    except MessageInvalid as exc:
        raise Invalid({exc.field: exc.message}) from None
    raw = crlf(raw)
    envelope_from = sender or mailbox.username

    def attempt(login: Login) -> SendResult:
        with SmtpClient(mailbox_endpoint(mailbox=mailbox), login) as smtp:
            return smtp.send(envelope_from, list(recipients), raw)

    try:
        result = with_mailbox_login(mailbox=mailbox, work=attempt)
    except (MailError, ServiceError) as exc:
        error = mailbox_error_of(exc)
        # A message or recipient the server refused says nothing of the mailbox's health.
        about_message = isinstance(exc, MailError) and exc.kind == "refused"
        with transaction.atomic():
            if not about_message:
                mailbox_health_record(
                    mailbox=mailbox,
                    now=timezone.now(),
                    failure=mailbox_failure_of(exc, protocol=mailbox.protocol),
                    error=error.message,
                )
            audit_record(
                actor=actor,
                target=mailbox,
                action=AuditAction.MAILBOX_SENT,
                outcome="failed",
                message=error.message,
            )
        raise error from None
    with transaction.atomic():
        mailbox_health_record(mailbox=mailbox, now=timezone.now(), failure=None)
        audit_record(
            actor=actor,
            target=mailbox,
            action=AuditAction.MAILBOX_SENT,
            message=f"to {len(result.accepted)} recipient(s): {result.reply}",
        )
        info = envelope(raw)
        event_record(
            type="message.sent",
            subject=mailbox,
            data={
                "mailbox": {"id": mailbox.pk, "name": mailbox.name},
                "message_id": info.message_id,
                "subject": info.subject,
                "from": envelope_from,
                "recipients": list(recipients),
                "accepted": list(result.accepted),
                "size": len(raw),
                "reply": result.reply,
            },
            mailbox_id=mailbox.pk,
            client_id=mailbox.oauth_client_id,
        )
    return result


def mailbox_send_message(
    *,
    mailbox: Mailbox,
    to: Sequence[str] = (),
    cc: Sequence[str] = (),
    bcc: Sequence[str] = (),
    subject: str = "",
    text: str = "",
    html: str = "",
    attachments: Sequence[Attachment] = (),
    sender: str | None = None,
    actor: Actor = SYSTEM,
) -> SendResult:
    """Compose a message from its parts (From: `sender`, else the mailbox's address) and send
    it to To, Cc and Bcc alike; Bcc is in the envelope only. A header value that would hold a
    control character once decoded, or an entry holding two addresses, is refused naming its
    field."""
    try:
        raw = compose(
            sender=sender or mailbox.username,
            to=to,
            cc=cc,
            subject=subject,
            text=text,
            html=html,
            attachments=attachments,
        )
    except MessageInvalid as exc:
        raise Invalid({exc.field: exc.message}) from None
    return mailbox_send(
        mailbox=mailbox,
        recipients=[*to, *cc, *bcc],
        raw=raw,
        sender=sender,
        actor=actor,
    )
