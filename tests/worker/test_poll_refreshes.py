"""A mailbox polled every 10 s with 60 s tokens, by the real worker against the real Dovecot and
oidc-provider: about one refresh per token lifetime (counted by the provider), never one per
poll, and every delivered message stored. (That the broker's callers never wait on a refresh is
tests/oauth/test_refresh_job.py's.)"""

import threading
import time
from email.message import EmailMessage

import pytest

from mailgrant.mailboxes.models import Mailbox, Message
from mailgrant.mailboxes.services.mailboxes import mailbox_create
from mailgrant.worker.loop import runtime_build

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

TTL = 60
POLL = 10
WINDOW = 2 * TTL + 10


def _message(n: int) -> bytes:
    message = EmailMessage()
    message["From"] = "customer@example.org"
    message["To"] = "alice@example.test"
    message["Subject"] = f"poll-refresh {n}"
    message["Message-ID"] = f"<poll-refresh-{n}-{time.time_ns()}@example.org>"
    message.set_content(f"message {n}\n")
    return message.as_bytes()


def _ours(mailbox: Mailbox) -> int:
    """This test's messages stored (alice's INBOX may hold others' leftovers, fetched too)."""
    return Message.objects.filter(mailbox=mailbox, message_id__contains="poll-refresh-").count()


def test_polls_every_10_s_cost_about_one_refresh_per_token_lifetime(
    oidc, dovecot, oidc_client, validate_headless
) -> None:
    oidc.set_access_token_ttl(TTL)
    try:
        client = oidc_client()
        validate_headless(client)
        mailbox = mailbox_create(
            values={
                "name": "polled",
                "host": "127.0.0.1",
                "port": dovecot.imap_port,
                "security": "none",
                "username": "alice@example.test",
                "auth_method": "oauth2",
                "oauth_client": client.pk,
                "poll_interval": POLL,
                "post_fetch_action": "delete",
            }
        )
        before = oidc.stats()["refresh_by_client"].get(client.client_id, 0)
        logins_before = dovecot.log.count("Login: user=<alice@example.test>")
        runtime = runtime_build(tick=1)
        thread = threading.Thread(target=runtime.run, daemon=True)
        thread.start()
        delivered = 0
        started = time.monotonic()
        try:
            while time.monotonic() - started < WINDOW:
                delivered += 1
                dovecot.deliver("alice@example.test", _message(delivered))
                time.sleep(POLL * 1.5)
            deadline = time.monotonic() + 3 * POLL
            while _ours(mailbox) < delivered and time.monotonic() < deadline:
                time.sleep(0.5)
        finally:
            runtime.stop()
            thread.join(30)
        elapsed = time.monotonic() - started
    finally:
        oidc.set_access_token_ttl(3600)

    mailbox.refresh_from_db()
    assert mailbox.health == "ok", (mailbox.health_reason, mailbox.last_error)
    assert _ours(mailbox) == delivered
    polls = dovecot.log.count("Login: user=<alice@example.test>") - logins_before
    assert polls >= WINDOW // POLL - 2  # it was polled on its interval throughout
    refreshes = oidc.stats()["refresh_by_client"].get(client.client_id, 0) - before
    # One per lifetime, give or take the one in progress: never one per poll.
    assert 1 <= refreshes <= elapsed / TTL + 1, (refreshes, polls, elapsed)
    assert Mailbox.objects.get(pk=mailbox.pk).consecutive_failures == 0
