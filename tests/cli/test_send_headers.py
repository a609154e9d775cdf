"""`mailgrant mailbox send` with a header that would inject, or two addresses in one entry: one
clear line naming the field, exit 1, and nothing reaches the real Dovecot submission."""

import pytest

from mailgrant.mailboxes.models import Mailbox
from mailgrant.mailboxes.services.mailboxes import mailbox_save
from tests.cli.conftest import assert_failed
from tests.servers.dovecot import PASSWORD_USERS
from tests.servers.dovecot_rawlog import rawlog_dovecot

pytestmark = [pytest.mark.integration]

USER, PASSWORD = next(iter(PASSWORD_USERS.items()))


@pytest.fixture(scope="module")
def submission():
    with rawlog_dovecot() as server:
        yield server


@pytest.mark.parametrize(
    ("flags", "field"),
    [
        (["--subject", "=?utf-8?q?Ticket_42=0D=0AReply-To:_attacker@evil.test?="], "subject"),
        (["--cc", '"x" <pat@example.test>, evil@evil.test'], "cc"),
        (["--from", "pat@example.test, evil@evil.test"], "sender"),
    ],
)
def test_send_refuses_with_one_line_naming_the_field(mailgrant, submission, flags, field) -> None:
    submission.forget()
    mailbox_save(
        mailbox=Mailbox(
            name="cli-out",
            protocol="smtp",
            direction="outgoing",
            host="127.0.0.1",
            port=submission.submission_port,
            security="none",
            auth_method="password",
            username=USER,
        ),
        password=PASSWORD,
    )
    result = mailgrant("mailbox", "send", "cli-out", "--to", USER, "--text", "x", *flags)
    assert_failed(result, field)
    assert submission.received() == []
