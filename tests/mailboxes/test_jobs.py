"""Polling mailboxes: due ones are fetched, a broken one does not stop the others, intervals
hold, and a mailbox claimed by one worker is not fetched by another."""

import socket
from datetime import timedelta

import pytest
from django.utils import timezone

from mailgrant.mailboxes.jobs import mailbox_claim, mailboxes_poll_due
from mailgrant.mailboxes.models import Mailbox, Message
from tests.mailboxes.conftest import message
from tests.servers.dovecot import PASSWORD_USERS

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_one_broken_mailbox_does_not_stop_the_others(dovecot, make_mailbox) -> None:
    user, password = next(iter(PASSWORD_USERS.items()))
    broken = make_mailbox(
        name="a-broken",
        auth_method="password",
        username=user,
        password=password,
        port=_closed_port(),
    )
    good = make_mailbox(name="b-good", auth_method="password", username=user, password=password)
    make_mailbox(
        name="c-disabled", auth_method="password", username=user, password=password, enabled=False
    )
    dovecot.deliver(user, message(7, extra="poller"))
    outcomes = {o.mailbox: o for o in mailboxes_poll_due()}
    assert set(outcomes) == {"a-broken", "b-good"}
    assert "refused the connection" in outcomes["a-broken"].error
    assert outcomes["b-good"].error == "" and outcomes["b-good"].fetched >= 1
    assert Message.objects.filter(mailbox=good, message_id="<m7-poller@example.test>").exists()
    broken.refresh_from_db()
    assert "refused the connection" in broken.last_error
    assert broken.next_poll_at > timezone.now() + timedelta(seconds=200)
    assert mailboxes_poll_due() == []  # nothing is due again before its interval


def test_a_claimed_mailbox_is_not_taken_twice(dovecot, make_mailbox) -> None:
    user, password = next(iter(PASSWORD_USERS.items()))
    mailbox = make_mailbox(auth_method="password", username=user, password=password)
    stale = Mailbox.objects.get(pk=mailbox.pk)
    assert mailbox_claim(mailbox=mailbox)
    assert not mailbox_claim(mailbox=stale)  # a second poller with the old view loses the race
