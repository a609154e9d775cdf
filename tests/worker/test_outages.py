"""The worker's jobs through two outages in a row, against real peers: the provider unreachable
(oidc-provider behind a relay that is cut), then one Dovecot stopped. Each mailbox fails with
its own reason and backs off, the other keeps fetching, and each recovers by itself when its
peer is back. The jobs run as the worker runs them (claims, one InlineContext per round); a
round's time is moved to when a backed-off mailbox is due instead of waiting for it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.utils import timezone

from mailgrant.common.jobs import InlineContext
from mailgrant.mailboxes.jobs import mailboxes_poll_due
from mailgrant.mailboxes.models import Mailbox, Message
from mailgrant.mailboxes.services.mailboxes import mailbox_save
from mailgrant.oauth.jobs import grants_refresh_due
from mailgrant.oauth.models import Grant, OAuthClient
from tests.conftest import DOVECOT_CLIENT
from tests.mailboxes.conftest import message
from tests.servers.dovecot import PASSWORD_USERS
from tests.servers.dovecot_idle import IdleDovecot
from tests.servers.latency import LatencyProxy

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

TTL = 5  # access tokens that run out while the provider is unreachable
PAT = "pat@example.test"


@pytest.fixture
def two_dovecots(dovecot: Any, oidc: Any) -> Iterator[tuple[IdleDovecot, IdleDovecot]]:
    """Private servers (the session's Dovecot registered the introspection client)."""
    client_id, secret = DOVECOT_CLIENT
    introspection = oidc.issuer.replace("http://", f"http://{client_id}:{secret}@")
    url = f"{introspection}/token/introspection"
    with IdleDovecot(introspection_url=url) as first, IdleDovecot(introspection_url=url) as second:
        yield first, second


def _round(now: datetime | None = None) -> InlineContext:
    """One worker round: due grants refreshed, due mailboxes fetched."""
    ctx = InlineContext(worker="worker-1", now=now or timezone.now())
    grants_refresh_due(ctx)
    mailboxes_poll_due(ctx)
    return ctx


def _state(mailbox: Mailbox) -> tuple[str, str, int]:
    mailbox.refresh_from_db()
    return mailbox.health, mailbox.health_reason, mailbox.consecutive_failures


def _stored(mailbox: Mailbox, tag: str) -> int:
    return Message.objects.filter(mailbox=mailbox, message_id__contains=tag).count()


def test_provider_then_dovecot_down_each_fails_alone_backs_off_and_recovers_alone(
    oidc, oidc_client, validate_headless, two_dovecots
) -> None:
    mail_a, mail_b = two_dovecots
    oidc.set_access_token_ttl(TTL)
    try:
        client = oidc_client()
        grant = validate_headless(client).grant
        with LatencyProxy(upstream_port=urlsplit(oidc.issuer).port or 80, rtt=0) as provider:
            # mailgrant reaches the provider's token endpoint through the relay only; Dovecot
            # still checks tokens with the provider directly
            token = urlsplit(OAuthClient.objects.get(pk=client.pk).metadata["token_endpoint"])
            token_url = urlunsplit(token._replace(netloc=f"127.0.0.1:{provider.port}"))
            OAuthClient.objects.filter(pk=client.pk).update(token_url=token_url)
            oauth = _mailbox(
                mail_a,
                name="a-oauth",
                username=grant.account,
                auth_method="oauth2",
                oauth_client=grant.client,
                grant=grant,
            )
            password = _mailbox(
                mail_b, name="b-password", username=PAT, password=PASSWORD_USERS[PAT]
            )
            _round()
            assert _state(oauth)[:2] == _state(password)[:2] == ("ok", "")

            # 1. the provider unreachable: the OAuth mailbox fails once its token runs out
            provider.down()
            time.sleep(TTL + 1)
            mail_a.deliver(grant.account, message(1, extra="oauth-mail"))
            mail_b.deliver(PAT, message(2, extra="password-mail"))
            _round(_due_at(oauth, password))
            assert _state(oauth) == ("failing", "provider.unreachable", 1)
            assert "provider" in oauth.last_error.lower()
            assert Grant.objects.get(pk=grant.pk).state == Grant.State.AUTHORIZED  # not dead
            assert _stored(password, "password-mail") == 1  # the other fetched meanwhile
            gaps = [_gap(oauth)]

            # backing off: not due at once, later and later while it lasts
            assert not [r for r in _round().results if getattr(r, "name", "") == "a-oauth"]
            _round(oauth.next_poll_at)
            assert _state(oauth) == ("failing", "provider.unreachable", 2)
            gaps.append(_gap(oauth))
            assert gaps[0] < gaps[1]

            # 2. then the password mailbox's Dovecot stops as well
            mail_b.halt()
            _round(_due_at(oauth, password))
            _round(_due_at(oauth, password))
            assert _state(password)[:2] == ("failing", "connect.refused")
            assert _state(oauth)[:2] == ("failing", "provider.unreachable")

            # 3. the provider is back: the OAuth mailbox recovers alone
            provider.up()
            _round(oauth.next_poll_at)
            assert _state(oauth) == ("ok", "", 0)
            assert _stored(oauth, "oauth-mail") == 1
            assert Grant.objects.get(pk=grant.pk).health == "ok"
            assert _state(password)[:2] == ("failing", "connect.refused")

            # 4. Dovecot is back: the password mailbox recovers alone
            mail_b.resume()
            mail_b.deliver(PAT, message(3, extra="after-restart"))
            _round(_due_at(password))
            assert _state(password) == ("ok", "", 0)
            assert _stored(password, "after-restart") == 1
            assert _state(oauth)[:2] == ("ok", "")
            assert _stored(oauth, "oauth-mail") == 1 and _stored(password, "password-mail") == 1
    finally:
        oidc.set_access_token_ttl(3600)


def _mailbox(
    server: IdleDovecot, *, name: str, username: str, password: str | None = None, **fields: Any
) -> Mailbox:
    return mailbox_save(
        mailbox=Mailbox(
            name=name,
            protocol="imap",
            direction="incoming",
            host="127.0.0.1",
            port=server.imap_port,
            security="none",
            username=username,
            auth_method=fields.pop("auth_method", "password"),
            poll_interval=10,
            **fields,
        ),
        password=password,
    )


def _due_at(*mailboxes: Mailbox) -> datetime:
    """The latest next poll of `mailboxes`: a round then finds each of them due."""
    for mailbox in mailboxes:
        mailbox.refresh_from_db()
    return max(m.next_poll_at or timezone.now() for m in mailboxes) + timedelta(seconds=1)


def _gap(mailbox: Mailbox) -> float:
    mailbox.refresh_from_db()
    assert mailbox.next_poll_at is not None and mailbox.last_fetch_at is not None
    return (mailbox.next_poll_at - mailbox.last_fetch_at).total_seconds()
