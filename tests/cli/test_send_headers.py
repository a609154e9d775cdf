"""`mailgrant mailbox send` with a header that would inject, or two addresses in one entry: one
clear line naming the field, exit 1, and nothing reaches the real Dovecot submission."""

import pytest

from tests.cli.conftest import assert_failed
from tests.mailboxes.outgoing import USER, outgoing_mailbox
from tests.servers.dovecot_rawlog import rawlog_dovecot

pytestmark = [pytest.mark.integration]


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
    outgoing_mailbox(name="cli-out", port=submission.submission_port)
    result = mailgrant("mailbox", "send", "cli-out", "--to", USER, "--text", "x", *flags)
    assert_failed(result, field)
    assert submission.received() == []
