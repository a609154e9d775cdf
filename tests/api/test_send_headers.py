"""POST /mailboxes/{id}/send: encoded-word header injection and two-address entries are a 400
naming the field, and what reaches the real Dovecot submission is CRLF throughout."""

import base64
import email
from email import policy

import pytest

from tests.mailboxes.outgoing import USER, outgoing_mailbox
from tests.servers.dovecot_rawlog import rawlog_dovecot, wait_for_data

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


@pytest.fixture(scope="module")
def submission():
    with rawlog_dovecot() as server:
        yield server


@pytest.fixture
def send(submission, api):
    submission.forget()
    mailbox = outgoing_mailbox(name="api-outgoing", port=submission.submission_port)
    return lambda body: api.post(f"/mailboxes/{mailbox.pk}/send", body)


def _attachment(filename: str, content_type: str = "text/plain") -> dict:
    return {
        "filename": filename,
        "content_base64": base64.b64encode(b"x").decode(),
        "content_type": content_type,
    }


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (
            {"subject": "=?utf-8?q?Ticket_42=0D=0AReply-To:_attacker@evil.test?="},
            "subject",
        ),
        ({"attachments": [_attachment("=?utf-8?q?a=0D=0AX-Injected:_1?=")]}, "attachments"),
        (
            {"attachments": [_attachment("a.txt", 'text/plain; x="\r\nX-Injected: 1"')]},
            "attachments",
        ),
        ({"to": ['"x" <pat@example.test>, evil@evil.test']}, "to"),
        ({"cc": ["pat@example.test, evil@evil.test"]}, "cc"),
        ({"bcc": ["pat@example.test, evil@evil.test"]}, "recipients"),
        ({"from": '"x" <pat@example.test>, evil@evil.test'}, "sender"),
    ],
)
def test_injection_is_a_400_naming_the_field_and_nothing_is_sent(
    submission, send, change, field
) -> None:
    response = send({"to": [USER], "subject": "hello", "text": "body", **change})
    assert response.status_code == 400, response.content
    problem = response.json()
    assert field in {f["field"] for f in problem["fields"]}, problem
    assert wait_for_data(submission, 0) == []
    assert not any(b"evil.test" in session for session in submission.received())


def test_raw_with_two_addresses_in_an_entry_is_a_400(submission, send) -> None:
    raw = base64.b64encode(f"From: {USER}\r\nTo: {USER}\r\n\r\nx\r\n".encode()).decode()
    response = send({"to": [f"{USER}, evil@evil.test"], "raw": raw})
    assert response.status_code == 400, response.content
    assert "recipients" in {f["field"] for f in response.json()["fields"]}
    assert submission.received() == []


def test_a_sent_message_arrives_with_crlf_and_only_its_headers(submission, send) -> None:
    response = send(
        {
            "to": [USER],
            "subject": "Ticket 42: Re: =?utf-8?q?caf=C3=A9?=",
            "text": "one\ntwo\n",
            "attachments": [_attachment("notes.txt")],
        }
    )
    assert response.status_code == 200, response.content
    (data,) = wait_for_data(submission, 1)
    assert b"\n" not in data.replace(b"\r\n", b"") and b"\r" not in data.replace(b"\r\n", b"")
    received = email.message_from_bytes(data, policy=policy.SMTP)
    assert sorted(k.lower() for k in received) == sorted(
        ["from", "to", "subject", "message-id", "date", "mime-version", "content-type"]
    )
    assert received["Subject"] == "Ticket 42: Re: café"
