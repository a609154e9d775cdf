from typing import Any

import pytest

from mailgrant.mailboxes.models import Mailbox
from mailgrant.mailboxes.services.mailboxes import mailbox_save


@pytest.fixture
def make_mailbox(dovecot: Any, db: Any) -> Any:
    def make(*, password: str | None = None, **fields: Any) -> Mailbox:
        protocol = fields.setdefault("protocol", "imap")
        fields.setdefault("name", f"mailbox-{Mailbox.objects.count() + 1}")
        fields.setdefault("direction", "outgoing" if protocol == "smtp" else "incoming")
        fields.setdefault("host", "127.0.0.1")
        fields.setdefault(
            "port",
            {"imap": dovecot.imap_port, "pop3": dovecot.pop3_port, "smtp": dovecot.submission_port}[
                protocol
            ],
        )
        fields.setdefault("security", "none")
        fields.setdefault("username", "alice@example.test")
        grant = fields.get("grant")
        if grant is not None:
            fields.setdefault("oauth_client", grant.client)
        return mailbox_save(mailbox=Mailbox(**fields), password=password)

    return make


def message(n: int, *, size: int = 0, extra: str = "") -> bytes:
    body = f"body of message {n}\r\n" + ("x" * 76 + "\r\n") * (size // 78)
    return (
        f"Message-ID: <m{n}-{extra}@example.test>\r\nFrom: Sender <sender@example.test>\r\n"
        f"To: alice@example.test\r\nSubject: Message {n}\r\n"
        f"Date: Sat, 28 Nov 2026 06:00:00 +0000\r\n\r\n{body}"
    ).encode()
