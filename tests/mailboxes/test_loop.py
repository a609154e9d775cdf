"""The full loop against a real Dovecot that checks every token at the real OpenID provider:
fetch over IMAP (XOAUTH2, OAUTHBEARER) and POP3, send over SMTP, fetch the sent message back."""

import email
import uuid
from pathlib import Path

import pytest

from mailgrant.mailboxes.models import Message
from mailgrant.mailboxes.protocol.compose import compose
from mailgrant.mailboxes.services.fetch import mailbox_fetch
from mailgrant.mailboxes.services.send import mailbox_send
from mailgrant.mailboxes.services.test import mailbox_test
from mailgrant.mailboxes.store import store_root
from tests.mailboxes.conftest import message

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def _deliver(dovecot, user: str, count: int) -> str:
    tag = uuid.uuid4().hex[:8]
    dovecot.deliver(user, *[message(i, extra=tag) for i in range(count)])
    return tag


@pytest.mark.parametrize("mechanism", ["xoauth2", "oauthbearer"])
def test_imap_fetch_with_each_mechanism(dovecot, make_mailbox, mail_grant, mechanism) -> None:
    user = f"imap-{mechanism}@example.test"
    tag = _deliver(dovecot, user, 5)
    # The grant is alice's; Dovecot logs in the account the token names, so the mailbox uses
    # the grant's own account name.
    mailbox = make_mailbox(grant=mail_grant, sasl_mechanism=mechanism, username=mail_grant.account)
    dovecot.deliver(mail_grant.account, *[message(i, extra=tag) for i in range(3)])
    result = mailbox_fetch(mailbox=mailbox)
    assert result.fetched >= 3
    stored = Message.objects.filter(mailbox=mailbox, message_id__contains=tag)
    assert stored.count() == 3
    row = stored.get(message_id=f"<m1-{tag}@example.test>")
    assert row.subject == "Message 1" and row.sender == "Sender <sender@example.test>"
    assert row.recipients == "alice@example.test" and row.date is not None
    raw = (store_root() / row.path).read_bytes()
    assert raw.endswith(message(1, extra=tag))  # Dovecot adds its trace headers in front
    assert row.size == len(raw)
    assert mailbox_fetch(mailbox=mailbox).fetched == 0  # nothing twice
    mailbox.refresh_from_db()
    assert mailbox.last_error == "" and mailbox.last_success_at is not None


def test_pop3_fetch_and_delete(dovecot, make_mailbox, mail_grant) -> None:
    mailbox = make_mailbox(
        grant=mail_grant, protocol="pop3", username=mail_grant.account, post_fetch_action="delete"
    )
    before = len(dovecot.maildir(mail_grant.account))
    tag = _deliver(dovecot, mail_grant.account, 4)
    result = mailbox_fetch(mailbox=mailbox)
    assert result.fetched == before + 4
    assert Message.objects.filter(mailbox=mailbox, message_id__contains=tag).count() == 4
    assert dovecot.maildir(mail_grant.account) == []  # deleted, after being stored
    assert all(
        Path(store_root() / m.path).exists() for m in Message.objects.filter(mailbox=mailbox)
    )


def test_smtp_send_and_fetch_it_back(dovecot, make_mailbox, mail_grant) -> None:
    outgoing = make_mailbox(grant=mail_grant, protocol="smtp", username=mail_grant.account)
    incoming = make_mailbox(
        grant=mail_grant,
        protocol="imap",
        username=mail_grant.account,
        post_fetch_action="move:Archive",
    )
    mailbox_fetch(mailbox=incoming)  # start from an empty inbox
    raw = compose(
        sender=mail_grant.account,
        to=[mail_grant.account],
        subject="Loop test ✓",
        text="plain body",
        html="<p>html body</p>",
    )
    result = mailbox_send(mailbox=outgoing, recipients=[mail_grant.account], raw=raw)
    assert result.reply.startswith("250")
    fetched = mailbox_fetch(mailbox=incoming)
    assert fetched.fetched == 1 and fetched.actions == 1
    message_id = email.message_from_bytes(raw)["Message-ID"]
    row = Message.objects.get(mailbox=incoming, message_id=message_id)
    assert row.subject == "Loop test ✓"
    assert dovecot.maildir(mail_grant.account) == []
    assert len(dovecot.maildir(mail_grant.account, "Archive")) >= 1


def test_test_connection_reports_a_masked_transcript(dovecot, make_mailbox, mail_grant) -> None:
    mailbox = make_mailbox(grant=mail_grant, username=mail_grant.account)
    result = mailbox_test(mailbox=mailbox)
    assert result.ok, result.message
    assert "XOAUTH2" in result.mechanisms and "OAUTHBEARER" in result.mechanisms
    assert "AUTHENTICATE XOAUTH2" in result.transcript
    token = mail_grant.tokens().access_token
    assert token not in result.transcript
    for protocol in ("pop3", "smtp"):
        other = make_mailbox(grant=mail_grant, protocol=protocol, username=mail_grant.account)
        outcome = mailbox_test(mailbox=other)
        assert outcome.ok, outcome.message
        assert token not in outcome.transcript


def test_password_login(dovecot, make_mailbox) -> None:
    from tests.servers.dovecot import PASSWORD_USERS

    user, password = next(iter(PASSWORD_USERS.items()))
    mailbox = make_mailbox(auth_method="password", username=user, password=password)
    result = mailbox_test(mailbox=mailbox)
    assert result.ok, result.message
    assert password not in result.transcript
    wrong = make_mailbox(auth_method="password", username=user, password="wrong-password")
    refused = mailbox_test(mailbox=wrong)
    assert not refused.ok and "refused the password login" in refused.message
