"""An outgoing SMTP mailbox with a password, for tests that send through a real Dovecot
submission service."""

from __future__ import annotations

from mailgrant.mailboxes.models import Mailbox
from mailgrant.mailboxes.services.mailboxes import mailbox_save
from tests.servers.dovecot import PASSWORD_USERS

USER, PASSWORD = next(iter(PASSWORD_USERS.items()))


def outgoing_mailbox(*, name: str, port: int) -> Mailbox:
    return mailbox_save(
        mailbox=Mailbox(
            name=name,
            protocol="smtp",
            direction="outgoing",
            host="127.0.0.1",
            port=port,
            security="none",
            auth_method="password",
            username=USER,
        ),
        password=PASSWORD,
    )
