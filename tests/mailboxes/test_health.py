"""A mailbox's health through its fetches, sends and Test connections: the reason and hint of
what the server said (the exact refusals of Exchange Online and Gmail on scripted servers, the
real refusals of Dovecot), backoff that grows while a server is down with the other mailboxes
fetching meanwhile, recovery by itself, and a mailbox waiting for re-authorization that
contacts nobody."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from mailgrant.common.audit import WORKER
from mailgrant.common.errors import Invalid, ServiceError
from mailgrant.mailboxes.models import Mailbox, Message
from mailgrant.mailboxes.services.fetch import mailbox_fetch
from mailgrant.mailboxes.services.mailboxes import mailbox_save, mailbox_update
from mailgrant.mailboxes.services.send import mailbox_send
from mailgrant.mailboxes.services.test import mailbox_test
from mailgrant.oauth.models import Grant
from tests.mailboxes.conftest import message
from tests.servers.dovecot import PASSWORD_USERS
from tests.servers.dovecot_idle import IdleDovecot
from tests.servers.refusing_mail import (
    EXCHANGE_NOT_CONNECTED,
    EXCHANGE_SMTP_MAILBOX,
    EXCHANGE_SMTP_TENANT,
    GMAIL_IMAP_OFF,
    RefusingImap,
    RefusingSmtp,
)

pytestmark = pytest.mark.django_db

PAT = "pat@example.test"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _password_mailbox(port: int, *, protocol: str = "imap", **fields: Any) -> Mailbox:
    fields.setdefault("username", PAT)
    return mailbox_save(
        mailbox=Mailbox(
            name=fields.pop("name", f"health-{Mailbox.objects.count() + 1}"),
            protocol=protocol,
            direction="outgoing" if protocol == "smtp" else "incoming",
            host="127.0.0.1",
            port=port,
            security=fields.pop("security", "none"),
            auth_method="password",
            **fields,
        ),
        password=fields.pop("password", PASSWORD_USERS[PAT]),
    )


def _fetch(mailbox: Mailbox) -> Mailbox:
    with pytest.raises(ServiceError):
        mailbox_fetch(mailbox=mailbox, actor=WORKER)
    mailbox.refresh_from_db()
    return mailbox


# --- the providers' own refusals, word for word ------------------------------------------------


@pytest.fixture
def refusing_imap() -> Iterator[RefusingImap]:
    with RefusingImap() as server:
        yield server


def test_exchange_not_connected_says_both_causes(refusing_imap) -> None:
    refusing_imap.replies["SELECT"] = EXCHANGE_NOT_CONNECTED
    mailbox = _password_mailbox(refusing_imap.port)
    result = mailbox_test(mailbox=mailbox)
    assert not result.ok and "User is authenticated but not connected" in result.message
    mailbox.refresh_from_db()
    assert (mailbox.health, mailbox.health_reason) == ("failing", "imap.not_connected")
    assert "not the mailbox's" in mailbox.health_hint and "Add-MailboxPermission" in (
        mailbox.health_hint
    )
    assert "User is authenticated but not connected" in mailbox.last_error
    mailbox = _fetch(mailbox)
    assert mailbox.health_reason == "imap.not_connected" and mailbox.consecutive_failures == 2
    # not a passing failure: the next attempt is on the interval, not sooner nor backed off
    assert mailbox.next_poll_at - mailbox.last_fetch_at == timedelta(seconds=300)


def test_gmail_imap_off_says_where_to_turn_it_on(refusing_imap) -> None:
    refusing_imap.replies["LOGIN"] = GMAIL_IMAP_OFF
    mailbox = _fetch(_password_mailbox(refusing_imap.port))
    assert (mailbox.health, mailbox.health_reason) == ("failing", "gmail.imap_disabled")
    assert "Enable IMAP" in mailbox.health_hint
    assert "not enabled for IMAP use" in mailbox.last_error


@pytest.mark.parametrize(
    ("reply", "scope"), [(EXCHANGE_SMTP_TENANT, "whole tenant"), (EXCHANGE_SMTP_MAILBOX, "mailbox")]
)
def test_exchange_smtp_auth_disabled_says_how_to_enable_it(reply: str, scope: str) -> None:
    with RefusingSmtp(replies={"AUTH": reply}) as server:
        mailbox = _password_mailbox(server.port, protocol="smtp")
        with pytest.raises(ServiceError, match=r"5\.7\.139"):
            mailbox_send(
                mailbox=mailbox, recipients=["bob@example.test"], raw=b"Subject: x\r\n\r\nhi\r\n"
            )
    mailbox.refresh_from_db()
    assert (mailbox.health, mailbox.health_reason) == ("failing", "smtp.auth_disabled")
    assert f"SMTP AUTH is off for this {scope}" in mailbox.health_hint or (
        scope == "whole tenant" and "for the whole tenant" in mailbox.health_hint
    )
    assert "SmtpClientAuthenticationDisabled $false" in mailbox.health_hint
    assert "5.7.139" in mailbox.last_error
    assert PASSWORD_USERS[PAT] not in mailbox.last_error + mailbox.health_hint


# --- the real refusals of Dovecot --------------------------------------------------------------


def test_a_wrong_password_is_auth_refused_and_waits_for_the_interval(dovecot) -> None:
    mailbox = _fetch(_password_mailbox(dovecot.imap_port, password="not-pats-password-canary"))
    assert (mailbox.health, mailbox.health_reason) == ("failing", "imap.auth_refused")
    assert "user name and the password" in mailbox.health_hint
    assert "not-pats-password-canary" not in mailbox.last_error + mailbox.health_hint
    assert mailbox.next_poll_at - mailbox.last_fetch_at == timedelta(seconds=300)
    # the password given again: a fresh start (ok, due at once), then fetching
    mailbox_update(mailbox=mailbox, values={}, password=PASSWORD_USERS[PAT])
    mailbox.refresh_from_db()
    assert (mailbox.health, mailbox.consecutive_failures, mailbox.next_poll_at) == ("ok", 0, None)
    mailbox_fetch(mailbox=mailbox)
    mailbox.refresh_from_db()
    assert mailbox.health == "ok" and mailbox.last_success_at is not None


def test_a_token_of_another_account_is_auth_refused_with_the_token_hint(
    dovecot, make_mailbox, mail_grant
) -> None:
    mailbox = make_mailbox(grant=mail_grant, username="bob@example.test")
    assert not mailbox_test(mailbox=mailbox).ok
    mailbox.refresh_from_db()
    assert mailbox.health_reason == "imap.auth_refused"
    assert "rejected the OAuth token itself (status 401)" in mailbox.health_hint
    token = mail_grant.tokens().access_token
    assert token not in mailbox.last_error + mailbox.health_hint


def test_tls_to_a_plaintext_port_is_tls_failed(dovecot) -> None:
    mailbox = _fetch(_password_mailbox(dovecot.imap_port, security="ssl"))
    assert (mailbox.health, mailbox.health_reason) == ("failing", "tls.failed")
    assert "STARTTLS" in mailbox.health_hint


@pytest.mark.django_db(transaction=True)
def test_a_stopped_server_backs_off_the_others_fetch_and_it_recovers_alone(dovecot, oidc) -> None:
    client_id, secret = "dovecot-resource-server", "dovecot-introspection-secret"
    introspection = oidc.issuer.replace("http://", f"http://{client_id}:{secret}@")
    url = f"{introspection}/token/introspection"
    # two private servers: the session's Dovecot keeps its users' INBOXes as other tests expect
    with IdleDovecot(introspection_url=url) as own, IdleDovecot(introspection_url=url) as up:
        down = _password_mailbox(own.imap_port, name="a-down", poll_interval=10)
        other = _password_mailbox(up.imap_port, name="b-other", poll_interval=10)
        mailbox_fetch(mailbox=down)
        own.halt()
        gaps = []
        for failures in range(1, 4):
            down = _fetch(down)
            assert (down.health, down.health_reason) == ("failing", "connect.refused")
            assert down.consecutive_failures == failures
            assert "refused the connection" in down.last_error
            gaps.append((down.next_poll_at - down.last_fetch_at).total_seconds())
            up.deliver(PAT, message(failures, extra="other-keeps-fetching"))
            assert mailbox_fetch(mailbox=other).fetched >= 1  # meanwhile the other fetches
        # equal jitter from 30 s (the interval is shorter), doubling: later and later
        assert 15 <= gaps[0] <= 30 <= gaps[1] <= 60 <= gaps[2] <= 120
        assert gaps[0] < gaps[1] < gaps[2]

        own.resume()
        own.deliver(PAT, message(9, extra="after-restart"))
        assert mailbox_fetch(mailbox=down).fetched == 1
        down.refresh_from_db()
        assert (down.health, down.health_reason, down.consecutive_failures) == ("ok", "", 0)
        assert down.last_error == "" and down.last_success_at is not None
        assert down.next_poll_at - down.last_fetch_at == timedelta(seconds=10)
        other.refresh_from_db()
        assert other.health == "ok"
        assert (
            Message.objects.filter(mailbox=other, message_id__contains="other-keeps").count() == 3
        )


# --- states that need an administrator ---------------------------------------------------------


def test_a_grant_to_reauthorize_contacts_nobody_and_recovers_once_authorized(
    oidc, dovecot, make_mailbox, mail_grant, validate_headless
) -> None:
    mailbox = make_mailbox(grant=mail_grant, username=mail_grant.account)
    Grant.objects.filter(pk=mail_grant.pk).update(
        state=Grant.State.REAUTHORIZATION_REQUIRED, last_error="invalid_grant (revoked)"
    )
    before, logins = oidc.stats(), dovecot.log.count("imap-login:")
    mailbox = _fetch(Mailbox.objects.select_related("grant").get(pk=mailbox.pk))
    assert (mailbox.health, mailbox.health_reason) == (
        "needs_reauthorization",
        "grant.needs_reauthorization",
    )
    assert "press Authorize" in mailbox.health_hint and "invalid_grant" in mailbox.last_error
    # it failed before connecting anywhere: neither the provider nor Dovecot saw it
    assert oidc.stats() == before
    assert dovecot.log.count("imap-login:") == logins
    assert mailbox.next_poll_at - mailbox.last_fetch_at == timedelta(seconds=300)

    validate_headless(mail_grant.client)  # the account authorizes again
    mailbox = Mailbox.objects.select_related("grant").get(pk=mailbox.pk)
    mailbox_fetch(mailbox=mailbox)  # its next poll
    mailbox.refresh_from_db()
    assert (mailbox.health, mailbox.health_reason, mailbox.consecutive_failures) == ("ok", "", 0)
    assert dovecot.log.count("imap-login:") > logins  # (a login is logged: the count means it)


def test_disabled_is_a_health_and_enabling_starts_afresh(dovecot) -> None:
    mailbox = _fetch(_password_mailbox(dovecot.imap_port, password="wrong-password"))
    mailbox_update(mailbox=mailbox, values={"enabled": False})
    mailbox.refresh_from_db()
    assert (mailbox.health, mailbox.health_reason) == ("disabled", "mailbox.disabled")
    mailbox_update(mailbox=mailbox, values={"enabled": True}, password=PASSWORD_USERS[PAT])
    mailbox.refresh_from_db()
    assert (mailbox.health, mailbox.consecutive_failures, mailbox.next_poll_at) == ("ok", 0, None)


@pytest.mark.parametrize("protocol", ["pop3", "smtp"])
def test_idle_is_imap_only(dovecot, protocol: str) -> None:
    with pytest.raises(Invalid) as raised:
        _password_mailbox(dovecot.pop3_port, protocol=protocol, push="idle")
    assert "IDLE is IMAP's" in raised.value.fields["push"]
    assert not Mailbox.objects.exists()
