"""Test connection's transcript never shows a password in any form it goes over the wire in:
as typed, IMAP-quoted, or base64 (SASL PLAIN and LOGIN, XOAUTH2, OAUTHBEARER). The lines a
login sends are masked where they are sent, against the real Dovecot, with passwords that hold
quotes, backslashes, spaces and non-ASCII; the API, the admin and the command line show the
same masked transcript."""

from __future__ import annotations

import base64
import html
import json
import smtplib

import pytest
from django.core.management import call_command
from django.urls import reverse

from mailgrant.mailboxes.protocol import sasl
from mailgrant.mailboxes.protocol import smtp as smtp_protocol
from mailgrant.mailboxes.services.test import mailbox_test
from tests.servers.dovecot import PASSWORD_USERS

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

QUOTED_USER = "quinn@example.test"  # ASCII with " \ and spaces: IMAP LOGIN quotes it
UTF8_USER = "zoe@example.test"  # beyond ASCII: IMAP AUTHENTICATE PLAIN, SMTP in UTF-8
TRICKY = [QUOTED_USER, UTF8_USER]


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def forms_of(user: str, password: str) -> list[str]:
    """Every form of `password` a login may put on the wire (and its tell-tale parts)."""
    quoted = password.replace("\\", "\\\\").replace('"', '\\"')
    plain = f"\0{user}\0{password}"
    forms = [password, quoted, f'"{quoted}"', _b64(password), _b64(plain)]
    # A base64 form cut where the transcript might wrap it, without its padding.
    forms += [f.rstrip("=") for f in forms] + [_b64(plain)[8:40], _b64(password)[:12]]
    return forms


def assert_no_form_of(text: str, user: str, password: str) -> None:
    for form in forms_of(user, password):
        assert form not in text, f"the password shows in the transcript as {form!r}"


def _mailbox(make_mailbox, protocol: str, user: str):
    return make_mailbox(
        protocol=protocol, auth_method="password", username=user, password=PASSWORD_USERS[user]
    )


MASKED = {
    ("imap", QUOTED_USER): f"LOGIN {QUOTED_USER} ***",
    ("imap", UTF8_USER): "AUTHENTICATE PLAIN",
    ("pop3", QUOTED_USER): "C: PASS ***",
    ("pop3", UTF8_USER): "C: PASS ***",
    ("smtp", QUOTED_USER): "C: AUTH PLAIN ***",
    ("smtp", UTF8_USER): "C: AUTH PLAIN ***",
}


@pytest.mark.parametrize("user", TRICKY)
@pytest.mark.parametrize("protocol", ["imap", "pop3", "smtp"])
def test_the_password_login_is_masked_where_it_is_sent(dovecot, make_mailbox, protocol, user):
    result = mailbox_test(mailbox=_mailbox(make_mailbox, protocol, user))
    # Dovecot took the password as it is: quoting and encodings were right.
    assert result.ok, result.message + "\n" + result.transcript
    assert MASKED[protocol, user] in result.transcript
    assert_no_form_of(result.transcript, user, PASSWORD_USERS[user])


def test_imap_authenticate_plain_sends_only_a_masked_continuation(dovecot, make_mailbox):
    result = mailbox_test(mailbox=_mailbox(make_mailbox, "imap", UTF8_USER))
    lines = result.transcript.splitlines()
    sent = next(i for i, line in enumerate(lines) if line.endswith("AUTHENTICATE PLAIN"))
    assert lines[sent + 2] == "C: ***"  # after the server's "+" continuation


def test_smtp_auth_login_continuations_are_masked(dovecot, make_mailbox, monkeypatch):
    """A server that offers only AUTH LOGIN: user and password each go base64 on a line."""
    ehlo = smtplib.SMTP.ehlo

    def login_only(self, name=""):
        reply = ehlo(self, name)
        self.esmtp_features["auth"] = "LOGIN"
        return reply

    monkeypatch.setattr(smtp_protocol._SMTP, "ehlo", login_only)
    result = mailbox_test(mailbox=_mailbox(make_mailbox, "smtp", UTF8_USER))
    assert result.ok, result.message + "\n" + result.transcript
    assert "C: AUTH LOGIN ***" in result.transcript
    assert "C: ***" in result.transcript
    assert_no_form_of(result.transcript, UTF8_USER, PASSWORD_USERS[UTF8_USER])


@pytest.mark.parametrize("mechanism", ["xoauth2", "oauthbearer"])
@pytest.mark.parametrize("protocol", ["imap", "pop3", "smtp"])
def test_token_logins_are_masked_where_they_are_sent(
    dovecot, make_mailbox, mail_grant, protocol, mechanism
):
    mailbox = make_mailbox(
        grant=mail_grant, protocol=protocol, username=mail_grant.account, sasl_mechanism=mechanism
    )
    result = mailbox_test(mailbox=mailbox)
    assert result.ok, result.message
    token = mail_grant.tokens().access_token
    message = sasl.initial_response(
        mechanism.upper(), user=mail_grant.account, token=token, host="127.0.0.1",
        port=mailbox.port,
    )  # fmt: skip
    for form in (token, _b64(message), _b64(message)[:40], _b64(token)[:40]):
        assert form not in result.transcript
    assert "C: ***" in result.transcript or f"AUTH {mechanism.upper()} ***" in result.transcript


def test_the_api_the_admin_and_the_command_line_show_it_masked(
    dovecot, make_mailbox, api, admin_client
):
    for protocol in ("imap", "smtp"):
        mailbox = _mailbox(make_mailbox, protocol, UTF8_USER)
        answer = api.post(f"/mailboxes/{mailbox.pk}/test")
        page = admin_client.post(reverse("admin:mailboxes_mailbox_test", args=[mailbox.pk]))
        plain, as_json = _Capture(), _Capture()
        call_command("mailbox", "test", mailbox.name, stdout=plain)
        call_command("mailbox", "test", mailbox.name, "--json", stdout=as_json)
        outputs = {
            # JSON and HTML escape quotes and non-ASCII: compare what they stand for.
            "api": json.dumps(answer.json(), ensure_ascii=False),
            "admin": html.unescape(page.content.decode()),
            "cli": plain.getvalue(),
            "cli --json": json.dumps(json.loads(as_json.getvalue()), ensure_ascii=False),
        }
        for surface, text in outputs.items():
            assert "logged in as" in text, surface
            assert_no_form_of(text, UTF8_USER, PASSWORD_USERS[UTF8_USER])


class _Capture:
    def __init__(self) -> None:
        self.parts: list[str] = []

    def write(self, text: str) -> None:
        self.parts.append(text)

    def flush(self) -> None:
        pass

    def getvalue(self) -> str:
        return "".join(self.parts)
