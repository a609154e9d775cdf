"""Bad input over real sockets: each a clear error, and nothing lost."""

import socket
import uuid
from pathlib import Path

import pytest

from mailgrant.common.errors import ServiceError
from mailgrant.mailboxes.models import Message
from mailgrant.mailboxes.services.fetch import mailbox_fetch
from mailgrant.mailboxes.services.test import mailbox_test
from mailgrant.mailboxes.store import store_root
from mailgrant.oauth.models import OAuthClient
from tests.mailboxes.conftest import message

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_wrong_port(make_mailbox, mail_grant) -> None:
    mailbox = make_mailbox(grant=mail_grant, username=mail_grant.account, port=_closed_port())
    result = mailbox_test(mailbox=mailbox)
    assert not result.ok and "refused the connection" in result.message
    with pytest.raises(ServiceError, match="refused the connection"):
        mailbox_fetch(mailbox=mailbox)
    mailbox.refresh_from_db()
    assert "refused the connection" in mailbox.last_error


@pytest.mark.parametrize("protocol", ["imap", "pop3", "smtp"])
def test_tls_to_a_plaintext_port(make_mailbox, mail_grant, protocol) -> None:
    mailbox = make_mailbox(
        grant=mail_grant, username=mail_grant.account, protocol=protocol, security="ssl"
    )
    result = mailbox_test(mailbox=mailbox)
    assert not result.ok
    assert "TLS" in result.message and "plaintext port" in result.message


def test_unknown_folder(make_mailbox, mail_grant) -> None:
    mailbox = make_mailbox(grant=mail_grant, username=mail_grant.account, folder="No Such Folder")
    result = mailbox_test(mailbox=mailbox)
    assert not result.ok and "'No Such Folder'" in result.message
    with pytest.raises(ServiceError, match="No Such Folder"):
        mailbox_fetch(mailbox=mailbox)


def test_disabled_client_fetches_nothing(dovecot, make_mailbox, mail_grant) -> None:
    dovecot.deliver(mail_grant.account, message(1, extra=uuid.uuid4().hex))
    before = len(dovecot.maildir(mail_grant.account))
    OAuthClient.objects.filter(pk=mail_grant.client_id).update(status="disabled")
    mailbox = make_mailbox(
        grant=mail_grant, username=mail_grant.account, post_fetch_action="delete"
    )
    with pytest.raises(ServiceError, match="is disabled"):
        mailbox_fetch(mailbox=mailbox)
    assert len(dovecot.maildir(mail_grant.account)) == before
    assert not Message.objects.filter(mailbox=mailbox).exists()


def test_a_30_mb_message_and_broken_mime_are_stored_byte_for_byte(
    dovecot, make_mailbox, mail_grant
) -> None:
    big = message(1, size=30 * 1024 * 1024, extra="big")
    broken = (
        b"Message-ID: <broken@example.test>\r\nSubject: =?utf-8?B?not base64!?=\r\n"
        b"Date: yesterday-ish\r\nFrom: <<<@@@>>>\r\n"
        b'Content-Type: multipart/mixed; boundary="missing\r\n\r\n'
        b"--nothing\r\n\xff\xfe binary junk\r\n"
    )
    no_headers = b"just a body with no header block at all\r\n"
    mailbox = make_mailbox(
        grant=mail_grant, username=mail_grant.account, post_fetch_action="delete"
    )
    mailbox_fetch(mailbox=mailbox)  # an empty inbox to start from
    dovecot.deliver(mail_grant.account, big, broken, no_headers)
    result = mailbox_fetch(mailbox=mailbox)
    assert result.errors == []
    rows = {m.message_id: m for m in Message.objects.filter(mailbox=mailbox)}
    stored_big = (store_root() / rows["<m1-big@example.test>"].path).read_bytes()
    assert stored_big.endswith(big) and len(stored_big) > 30 * 1024 * 1024
    broken_row = rows["<broken@example.test>"]
    assert (store_root() / broken_row.path).read_bytes().endswith(broken)
    assert broken_row.date is None
    assert any((store_root() / m.path).read_bytes().endswith(no_headers) for m in rows.values())
    assert dovecot.maildir(mail_grant.account) == []  # deleted only once stored


def test_uidvalidity_change_resyncs_without_loss_or_duplicates(
    dovecot, make_mailbox, mail_grant
) -> None:
    tag = uuid.uuid4().hex[:8]
    mailbox = make_mailbox(grant=mail_grant, username=mail_grant.account)
    mailbox_fetch(mailbox=mailbox)
    dovecot.deliver(mail_grant.account, *[message(i, extra=tag) for i in range(5)])
    assert mailbox_fetch(mailbox=mailbox).fetched == 5
    first = set(Message.objects.filter(mailbox=mailbox).values_list("uidvalidity", flat=True))
    # Dovecot renumbers the folder when its UID list and indexes are lost.
    maildir = Path(dovecot.mail_root) / mail_grant.account / "Maildir"
    for path in maildir.glob("dovecot*"):
        path.unlink()
    dovecot.deliver(mail_grant.account, message(99, extra=tag))
    result = mailbox_fetch(mailbox=mailbox)
    assert result.fetched == 1 and result.resynced >= 5
    rows = Message.objects.filter(mailbox=mailbox)
    assert set(rows.values_list("uidvalidity", flat=True)).isdisjoint(first)
    ids = list(rows.values_list("message_id", flat=True))
    assert len(ids) == len(set(ids))
    assert {f"<m{i}-{tag}@example.test>" for i in [*range(5), 99]} <= set(ids)
