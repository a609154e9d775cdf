"""Test connection: log in for real and report the masked transcript."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from mailgrant.common.audit import SYSTEM, Actor, AuditAction, audit_record
from mailgrant.common.errors import ServiceError
from mailgrant.mailboxes.health import Failure, mailbox_failure_of
from mailgrant.mailboxes.models import Mailbox
from mailgrant.mailboxes.protocol.imap import ImapClient
from mailgrant.mailboxes.protocol.pop3 import Pop3Client
from mailgrant.mailboxes.protocol.smtp import SmtpClient
from mailgrant.mailboxes.protocol.transport import (
    Login,
    MailError,
    Transcript,
)
from mailgrant.mailboxes.services.login import (
    mailbox_endpoint,
    mailbox_error_of,
    with_mailbox_login,
)
from mailgrant.mailboxes.services.outcome import mailbox_health_record

log = logging.getLogger(__name__)


@dataclass
class TestResult:
    ok: bool
    message: str
    capabilities: tuple[str, ...] = ()
    mechanisms: tuple[str, ...] = ()
    transcript: str = ""
    details: dict[str, Any] | None = None
    refreshed: bool = False


def mailbox_test(*, mailbox: Mailbox, actor: Actor = SYSTEM) -> TestResult:
    """Connect, log in and (incoming) open the folder; report the masked transcript."""
    transcript = Transcript()
    refreshed = False
    failure: Failure | None = None

    def mark_refreshed() -> None:
        nonlocal refreshed
        refreshed = True
        transcript.note("token refused: refreshed it once, retrying")

    def attempt(login: Login) -> TestResult:
        endpoint = mailbox_endpoint(mailbox=mailbox)
        if mailbox.protocol == Mailbox.Protocol.IMAP:
            with ImapClient(endpoint, login, transcript=transcript) as imap:
                state = imap.select(mailbox.folder or "INBOX")
                caps = imap.capabilities
                summary = f"{state.exists} message(s) in {state.name}"
        elif mailbox.protocol == Mailbox.Protocol.POP3:
            with Pop3Client(endpoint, login, transcript=transcript) as pop:
                caps = pop.capabilities
                summary = f"{len(pop.messages())} message(s) waiting"
        else:
            with SmtpClient(endpoint, login, transcript=transcript) as smtp:
                caps = smtp.capabilities
                summary = "ready to send"
        mechanisms = tuple(sorted({m for c in caps for m in _auth_mechanisms(c)}))
        return TestResult(
            ok=True,
            message=f"Connected and logged in as {login.username}: {summary}.",
            capabilities=caps,
            mechanisms=mechanisms,
            transcript=str(transcript),
        )

    try:
        result = with_mailbox_login(mailbox=mailbox, work=attempt, on_refresh=mark_refreshed)
        result.refreshed = refreshed
        result.transcript = str(transcript)
    except (MailError, ServiceError) as exc:
        error = mailbox_error_of(exc)
        failure = mailbox_failure_of(exc, protocol=mailbox.protocol)
        result = TestResult(
            ok=False,
            message=error.message,
            transcript=str(transcript),
            details=error.details,
            refreshed=refreshed,
        )
    with transaction.atomic():
        mailbox_health_record(
            mailbox=mailbox,
            now=timezone.now(),
            failure=failure,
            error="" if failure is None else result.message,
            due=True,
        )
        audit_record(
            actor=actor,
            target=mailbox,
            action=AuditAction.MAILBOX_TESTED,
            outcome="ok" if result.ok else "failed",
            message=result.message,
        )
    return result


def _auth_mechanisms(capability: str) -> list[str]:
    upper = capability.upper()
    if upper.startswith("AUTH="):
        return [upper[5:]]
    if upper.startswith(("AUTH ", "SASL ")):
        return upper.split()[1:]
    return []
