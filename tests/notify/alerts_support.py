"""What the alert tests share: a worker round of the alert jobs, a mailbox that fails for
real (a closed port), and a real SMTP server on loopback that keeps what it is given."""

from __future__ import annotations

import socket
from datetime import datetime
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from django.utils import timezone

from mailgrant.common.audit import WORKER
from mailgrant.common.errors import ServiceError
from mailgrant.common.jobs import InlineContext
from mailgrant.mailboxes.models import Mailbox
from mailgrant.mailboxes.services.fetch import mailbox_fetch
from mailgrant.mailboxes.services.mailboxes import mailbox_save
from mailgrant.notify.alerts.jobs import incidents_check, notices_send_due
from tests.servers.dovecot import PASSWORD_USERS


def alert_round(*, now: datetime | None = None, worker: str = "w1") -> list[Any]:
    """One worker round of the alert jobs: incidents kept in step, due notices sent."""
    at = now or timezone.now()
    incidents_check(InlineContext(worker=worker, now=at))
    ctx = InlineContext(worker=worker, now=at)
    notices_send_due(ctx)
    return ctx.results


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def failing_mailbox(name: str) -> Mailbox:
    """An incoming mailbox whose server refuses connections, fetched once: failing."""
    mailbox = mailbox_save(
        mailbox=Mailbox(
            name=name,
            protocol="imap",
            direction="incoming",
            host="127.0.0.1",
            port=closed_port(),
            security="none",
            auth_method="password",
            username="pat@example.test",
        ),
        password=PASSWORD_USERS["pat@example.test"],
    )
    fail(mailbox)
    return mailbox


def fail(mailbox: Mailbox) -> Mailbox:
    with pytest.raises(ServiceError):
        mailbox_fetch(mailbox=mailbox, actor=WORKER)
    mailbox.refresh_from_db()
    return mailbox


class SmtpSink:
    """A real SMTP server on loopback keeping every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []
        self.controller = Controller(self, hostname="127.0.0.1", port=closed_port())

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"

    @property
    def port(self) -> int:
        return int(self.controller.port)

    def __enter__(self) -> SmtpSink:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()
