"""IMAP IDLE on real Dovecot: with a one-hour poll interval a delivered message is stored long
before the next poll, across a token expiry and across a server restart; a mailbox is watched
by one worker at a time, and fifty watched mailboxes cost a handful of threads, not fifty.

The worker's runtime is stood in for by a minimal loop: beat the IdleService, and fetch the
mailboxes that are due (the poll path) whenever it wakes us. Every wait is bounded and waits
for an outcome."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from mailgrant.common.audit import WORKER
from mailgrant.common.errors import ServiceError
from mailgrant.mailboxes.idle import DATABASE_THREADS, IdleService
from mailgrant.mailboxes.models import Mailbox, Message
from mailgrant.mailboxes.protocol.idle import IdleSettings
from mailgrant.mailboxes.services.fetch import mailbox_fetch
from mailgrant.mailboxes.services.mailboxes import mailbox_save, mailbox_update
from tests.conftest import DOVECOT_CLIENT
from tests.servers.dovecot import PASSWORD_USERS
from tests.servers.dovecot_idle import IdleDovecot

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

HOUR = 3600
WAIT = 60.0


@pytest.fixture(scope="module")
def own_dovecot(dovecot: Any, oidc: Any) -> Iterator[IdleDovecot]:
    """A private Dovecot (the session's `dovecot` registered its introspection client) that
    may be restarted and takes many connections."""
    client_id, secret = DOVECOT_CLIENT
    introspection = oidc.issuer.replace("http://", f"http://{client_id}:{secret}@")
    with IdleDovecot(introspection_url=f"{introspection}/token/introspection") as server:
        yield server


class Runtime:
    """Beats the service; fetches what is due when woken (or every beat)."""

    def __init__(self, service: IdleService, worker: str = "worker-1") -> None:
        self.service = service
        self.woken = threading.Event()
        service.start(worker=worker, wake=self.woken.set)

    def poll_due(self) -> None:
        due = Mailbox.objects.filter(
            enabled=True, direction="incoming", next_poll_at__lte=timezone.now()
        ).select_related("oauth_client", "grant")
        for mailbox in due:
            with contextlib.suppress(ServiceError):  # recorded on the mailbox
                mailbox_fetch(mailbox=mailbox, actor=WORKER)

    def until(self, what: str, done: Callable[[], bool], timeout: float = WAIT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.service.beat(now=timezone.now())
            self.poll_due()
            if done():
                return
            self.woken.wait(0.2)
            self.woken.clear()
        raise AssertionError(f"not within {timeout:g} s: {what}")


def _idle_mailbox(server: IdleDovecot, user: str, password: str, **fields: Any) -> Mailbox:
    mailbox = mailbox_save(
        mailbox=Mailbox(
            name=fields.pop("name", f"idle-{user}"),
            protocol="imap",
            direction="incoming",
            host="127.0.0.1",
            port=fields.pop("port", server.imap_port),
            security=fields.pop("security", "none"),
            username=user,
            auth_method=fields.pop("auth_method", "password"),
            poll_interval=HOUR,
            push="idle",
            **fields,
        ),
        password=password or None,
    )
    # just polled: the next poll is an hour away
    Mailbox.objects.filter(pk=mailbox.pk).update(next_poll_at=timezone.now() + timedelta(hours=1))
    return mailbox


def _raw(tag: str) -> tuple[str, bytes]:
    mid = f"<idle-{tag}-{uuid.uuid4().hex[:8]}@example.test>"
    return mid, f"Message-ID: {mid}\r\nSubject: {tag}\r\n\r\nbody\r\n".encode()


def _health(mailbox: Mailbox) -> tuple[str, str]:
    row = Mailbox.objects.values_list("health", "health_reason").get(pk=mailbox.pk)
    return row[0], row[1]


def _stored(mailbox: Mailbox, mid: str) -> Callable[[], bool]:
    return lambda: Message.objects.filter(mailbox=mailbox, message_id=mid).exists()


@pytest.fixture
def service() -> Iterator[IdleService]:
    service = IdleService(
        settings=IdleSettings(renew_seconds=5, token_margin_seconds=4, reconnect_cap_seconds=2),
        lease_seconds=30,
    )
    yield service
    service.stop()


def test_mail_is_stored_at_once_and_across_a_server_restart(own_dovecot, service) -> None:
    user = "pat@example.test"
    mailbox = _idle_mailbox(own_dovecot, user, PASSWORD_USERS[user])
    runtime = Runtime(service)
    watcher = lambda: service.watching()[mailbox.pk]  # noqa: E731
    runtime.until(
        "watching", lambda: mailbox.pk in service.watching() and watcher().stats.connected
    )

    mid, raw = _raw("first")
    own_dovecot.deliver(user, raw)
    runtime.until("the first message stored", _stored(mailbox, mid))
    # IDLE is re-issued on its period (the server's inactivity timeout), on one connection
    runtime.until("IDLE re-issued", lambda: watcher().stats.renewals >= 1)
    assert watcher().stats.connects == 1

    own_dovecot.halt()
    runtime.until("the drop noticed", lambda: watcher().stats.failures >= 1)
    # the failing connection makes one poll now: the mailbox's health says it, not in an hour
    runtime.until("the mailbox failing", lambda: _health(mailbox) == ("failing", "connect.refused"))
    own_dovecot.resume()
    runtime.until("connected again", lambda: watcher().stats.connected)
    runtime.until("the mailbox well again", lambda: _health(mailbox) == ("ok", ""))
    mid2, raw2 = _raw("after-restart")
    own_dovecot.deliver(user, raw2)
    runtime.until("the message after the restart stored", _stored(mailbox, mid2))

    mailbox.refresh_from_db()
    # the next poll an hour away: IDLE's fetches, not polls, stored the messages
    assert mailbox.next_poll_at > timezone.now() + timedelta(minutes=50)
    assert Message.objects.filter(mailbox=mailbox, message_id__in=[mid, mid2]).count() == 2
    assert watcher().stats.connects >= 2


def test_mail_is_stored_across_a_token_expiry(
    own_dovecot, service, oidc, oidc_client, validate_headless
) -> None:
    oidc.set_access_token_ttl(12)
    try:
        grant = validate_headless(oidc_client()).grant
        mailbox = _idle_mailbox(
            own_dovecot,
            grant.account,
            "",
            auth_method="oauth2",
            grant=grant,
            oauth_client=grant.client,
        )
        runtime = Runtime(service)
        runtime.until(
            "watching", lambda: any(w.stats.connected for w in service.watching().values())
        )
        watcher = service.watching()[mailbox.pk]
        # the watcher leaves before the token expires and logs in again with a fresh one
        runtime.until("a reconnection for the token", lambda: watcher.stats.token_reconnects >= 1)
        runtime.until("connected again", lambda: watcher.stats.connected)
        mid, raw = _raw("after-expiry")
        own_dovecot.deliver(grant.account, raw)
        runtime.until("the message stored", _stored(mailbox, mid))
        grant.refresh_from_db()
        assert grant.refresh_count >= 1
        assert watcher.stats.failures == 0  # never refused: the token was always fresh
    finally:
        oidc.set_access_token_ttl(3600)


@pytest.fixture(scope="module")
def tls_dovecot(dovecot: Any, oidc: Any) -> Iterator[IdleDovecot]:
    client_id, secret = DOVECOT_CLIENT
    introspection = oidc.issuer.replace("http://", f"http://{client_id}:{secret}@")
    with IdleDovecot(introspection_url=f"{introspection}/token/introspection", tls=True) as server:
        yield server


@pytest.mark.parametrize("security", ["ssl", "starttls"])
def test_idle_over_tls_verifies_the_server_and_stores_mail(
    tls_dovecot, service, security, monkeypatch
) -> None:
    # the server's self-signed certificate is the only one trusted: verification stays on
    monkeypatch.setenv("SSL_CERT_FILE", tls_dovecot.certificate)
    user = "pat@example.test"
    port = tls_dovecot.imaps_port if security == "ssl" else tls_dovecot.imap_port
    mailbox = _idle_mailbox(
        tls_dovecot,
        user,
        PASSWORD_USERS[user],
        name=f"idle-tls-{security}",
        security=security,
        port=port,
    )
    runtime = Runtime(service)
    runtime.until(
        "watching over TLS",
        lambda: mailbox.pk in service.watching() and service.watching()[mailbox.pk].stats.connected,
    )
    mid, raw = _raw(f"tls-{security}")
    tls_dovecot.deliver(user, raw)
    runtime.until("the message stored", _stored(mailbox, mid))
    assert service.watching()[mailbox.pk].stats.failures == 0


def test_idle_refuses_a_server_it_cannot_verify(tls_dovecot, service) -> None:
    user = "pat@example.test"
    mailbox = _idle_mailbox(
        tls_dovecot,
        user,
        PASSWORD_USERS[user],
        name="idle-tls-untrusted",
        security="ssl",
        port=tls_dovecot.imaps_port,
    )
    runtime = Runtime(service)
    # the failing connection makes a poll, which names the reason on the mailbox
    runtime.until("the mailbox failing", lambda: _health(mailbox) == ("failing", "tls.failed"))
    assert not service.watching()[mailbox.pk].stats.connected
    assert Message.objects.filter(mailbox=mailbox).count() == 0


def test_fifty_mailboxes_on_one_thread_each_watched_by_one_worker(own_dovecot) -> None:
    users = {f"idle{n:02d}@example.test": f"pw-{n}" for n in range(50)}
    own_dovecot.add_password_users(users)
    mailboxes = [_idle_mailbox(own_dovecot, user, pw) for user, pw in users.items()]
    settings = IdleSettings(renew_seconds=600)
    first, second = (
        IdleService(settings=settings, lease_seconds=30),
        IdleService(settings=settings, lease_seconds=30),
    )
    before = threading.active_count()
    runtime = Runtime(first)
    try:
        runtime.until(
            "fifty connected",
            lambda: sum(w.stats.connected for w in first.watching().values()) == 50,
        )
        # the loop thread and the bounded database threads, whatever the number of mailboxes
        assert threading.active_count() - before <= 1 + DATABASE_THREADS
        other = Runtime(second, worker="worker-2")
        assert second.beat(now=timezone.now())["idle_watched"] == 0  # all leased to the first
        mid, raw = _raw("one-of-fifty")
        own_dovecot.deliver("idle07@example.test", raw)
        runtime.until("stored", _stored(mailboxes[7], mid))
        first.stop()
        assert set(Mailbox.objects.values_list("idle_by", flat=True)) == {""}
        other.until("taken over", lambda: len(second.watching()) == 50)
        assert set(Mailbox.objects.values_list("idle_by", flat=True)) == {"worker-2"}
    finally:
        first.stop()
        second.stop()


def test_a_refused_login_rests_until_the_mailbox_is_fixed(own_dovecot, service) -> None:
    user = "quinn@example.test"
    mailbox = _idle_mailbox(own_dovecot, user, "a-wrong-password")
    runtime = Runtime(service)
    runtime.until("refused and resting", lambda: service.beat(now=timezone.now())["idle_refused"])
    assert mailbox.pk not in service.watching()  # not tried again every few minutes
    assert service.beat(now=timezone.now())["idle_refused"] == 1
    assert Mailbox.objects.get(pk=mailbox.pk).idle_by == "worker-1"  # its lease kept meanwhile
    mailbox.refresh_from_db()
    mailbox_update(mailbox=mailbox, values={}, password=PASSWORD_USERS[user])
    Mailbox.objects.filter(pk=mailbox.pk).update(next_poll_at=timezone.now() + timedelta(hours=1))
    runtime.until(
        "watched again once fixed",
        lambda: mailbox.pk in service.watching() and service.watching()[mailbox.pk].stats.connected,
    )
