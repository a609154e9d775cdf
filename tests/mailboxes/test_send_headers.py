"""Header injection and line ends in what the send service puts into SMTP DATA, read from the
real Dovecot submission's own record of the bytes it received (before it rewrites them)."""

import email
import re
from email import policy

import pytest

from mailgrant.common.errors import Invalid
from mailgrant.mailboxes.protocol.compose import Attachment
from mailgrant.mailboxes.services.send import mailbox_send, mailbox_send_message
from tests.mailboxes.outgoing import USER, outgoing_mailbox
from tests.servers.dovecot_rawlog import rawlog_dovecot, wait_for_data

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

INJECTED = "=?utf-8?q?Ticket_42=0D=0AReply-To:_attacker@evil.test=0D=0AFrom:_ceo@example.test?="


@pytest.fixture(scope="module")
def submission():
    with rawlog_dovecot() as server:
        yield server


@pytest.fixture
def outgoing(submission, db):
    submission.forget()
    return outgoing_mailbox(name="outgoing", port=submission.submission_port)


def assert_crlf_only(data: bytes) -> None:
    assert data.endswith(b"\r\n")
    assert b"\n" not in data.replace(b"\r\n", b""), "a bare LF in DATA"
    assert b"\r" not in data.replace(b"\r\n", b""), "a bare CR in DATA"


@pytest.mark.parametrize(
    ("parts", "field"),
    [
        ({"subject": INJECTED}, "subject"),
        ({"subject": "=?utf-8?b?VGlja2V0DQpSZXBseS1UbzogYXR0YWNrZXJAZXZpbC50ZXN0?="}, "subject"),
        ({"subject": "=?utf-8?q?a=E2=80=A8Reply-To:_x@evil.test?="}, "subject"),  # U+2028
        (
            {"attachments": [Attachment("=?utf-8?q?a=0D=0AX-Injected:_1?=", b"x")]},
            "attachments",
        ),
        (
            {"attachments": [Attachment("a.txt", b"x", "text/plain\r\nX-Injected: 1")]},
            "attachments",
        ),
        ({"to": ['"x" <pat@example.test>, evil@evil.test']}, "to"),
        ({"cc": ['"x" <pat@example.test>, evil@evil.test']}, "cc"),
        ({"bcc": ["pat@example.test, evil@evil.test"]}, "recipients"),
        ({"sender": "pat@example.test, ceo@example.test"}, "sender"),
        ({"sender": "=?utf-8?q?Pat=0D=0ABcc:_evil@evil.test?= <pat@example.test>"}, "sender"),
    ],
)
def test_a_header_that_would_inject_is_refused_and_nothing_is_sent(
    submission, outgoing, parts, field
) -> None:
    message = {"to": [USER], "subject": "hello", "text": "body", **parts}
    with pytest.raises(Invalid) as refused:
        mailbox_send_message(mailbox=outgoing, **message)
    assert field in refused.value.fields, refused.value.fields
    assert wait_for_data(submission, 0) == []  # nothing reached the server's DATA
    assert not any(b"evil.test" in session for session in submission.received())


def test_a_composed_message_arrives_with_crlf_and_exactly_its_headers(submission, outgoing) -> None:
    result = mailbox_send_message(
        mailbox=outgoing,
        to=[f"Pat Müller <{USER}>"],
        subject="Grüße =?utf-8?q?aus_K=C3=B6ln?= " + "lang " * 40,
        text="line one\nline two\rline three\r\n",
        html="<p>html\nbody</p>",
        attachments=[
            Attachment("Rechnung März — " + "x" * 120 + ".pdf", b"%PDF\n\r\x00", "application/pdf")
        ],
    )
    assert result.reply.startswith("250")
    (data,) = wait_for_data(submission, 1)
    assert_crlf_only(data)
    received = email.message_from_bytes(data, policy=policy.SMTP)
    assert [k.lower() for k in received] == [
        "from",
        "to",
        "subject",
        "message-id",
        "date",
        "mime-version",
        "content-type",
    ]
    assert received["Subject"].startswith("Grüße aus Köln lang")
    attachment = next(received.iter_attachments())
    assert attachment.get_filename() == "Rechnung März — " + "x" * 120 + ".pdf"
    assert attachment.get_content() == b"%PDF\n\r\x00"


def test_raw_bytes_with_bare_line_feeds_go_out_with_crlf(submission, outgoing) -> None:
    raw = f"From: {USER}\nTo: {USER}\nSubject: raw\n\nbody\nline\r\n".encode()
    mailbox_send(mailbox=outgoing, recipients=[USER], raw=raw)
    (data,) = wait_for_data(submission, 1)
    assert_crlf_only(data)
    assert data == re.sub(rb"\r?\n", b"\r\n", raw)
