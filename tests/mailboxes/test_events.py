"""The events a mailbox's work writes, against the real Dovecot: message.received once per
stored message, in the transaction that stores it, numbered gap-free per mailbox; message.sent
once the server accepted."""

from __future__ import annotations

import uuid

import pytest

from mailgrant.common.errors import ServiceError
from mailgrant.common.events import event_body
from mailgrant.common.models import Event
from mailgrant.mailboxes.models import Mailbox, Message
from mailgrant.mailboxes.services.fetch import mailbox_fetch
from mailgrant.mailboxes.services.mailboxes import mailbox_save
from mailgrant.mailboxes.services.send import mailbox_send
from tests.conftest import DOVECOT_CLIENT
from tests.mailboxes.conftest import message
from tests.servers.dovecot import PASSWORD_USERS
from tests.servers.dovecot_idle import IdleDovecot

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PAT = "pat@example.test"


def test_each_stored_message_is_announced_once_in_order(dovecot, make_mailbox) -> None:
    tag = uuid.uuid4().hex[:8]
    mailbox = make_mailbox(
        username=PAT,
        auth_method="password",
        password=PASSWORD_USERS[PAT],
        post_fetch_action="delete",
    )
    received = Event.objects.filter(type="message.received", mailbox_ref=mailbox.pk)
    before = mailbox_fetch(mailbox=mailbox).fetched  # whatever an earlier test left
    assert received.count() == before
    for n in range(5):
        dovecot.deliver(PAT, message(n, extra=tag))
    assert mailbox_fetch(mailbox=mailbox).fetched == 5
    events = list(received.filter(sequence__gt=before).order_by("sequence"))
    assert [e.sequence for e in events] == [before + n for n in range(1, 6)]
    stored = {m.pk: m for m in Message.objects.filter(mailbox=mailbox)}
    for event in events:
        data = event_body(event)["data"]
        row = stored[data["message"]["id"]]
        assert data["message"]["message_id"] == row.message_id and tag in row.message_id
        assert data["message"]["size"] == row.size
        assert data["message"]["raw_url"].endswith(f"/api/v1/messages/{row.pk}/raw")
        assert data["mailbox"] == {"id": mailbox.pk, "name": mailbox.name}
        assert data["sequence"] == event.sequence and event.mailbox_ref == mailbox.pk

    dovecot.deliver(PAT, message(9, extra=tag))
    assert mailbox_fetch(mailbox=mailbox).fetched == 1
    assert mailbox_fetch(mailbox=mailbox).fetched == 0  # nothing new: nothing announced
    sequences = list(received.values_list("sequence", flat=True))
    assert sorted(sequences) == list(range(1, before + 7))  # gap-free from the first


def test_a_sent_message_is_announced_once_accepted(dovecot, make_mailbox) -> None:
    mailbox = make_mailbox(
        protocol="smtp", username=PAT, auth_method="password", password=PASSWORD_USERS[PAT]
    )
    raw = message(1, extra="sent-event")
    mailbox_send(mailbox=mailbox, recipients=["alice@example.test"], raw=raw)
    event = Event.objects.get(type="message.sent")
    data = event_body(event)["data"]
    assert data["recipients"] == ["alice@example.test"] and data["accepted"]
    assert data["message_id"] == "<m1-sent-event@example.test>"
    assert event.mailbox_ref == mailbox.pk and event.sequence is None


def test_a_fetch_that_starts_failing_is_announced_once_and_its_recovery_once(dovecot, oidc) -> None:
    client_id, secret = DOVECOT_CLIENT
    introspection = oidc.issuer.replace("http://", f"http://{client_id}:{secret}@")
    with IdleDovecot(introspection_url=f"{introspection}/token/introspection") as own:
        mailbox = mailbox_save(
            mailbox=Mailbox(
                name="flaky",
                host="127.0.0.1",
                port=own.imap_port,
                security="none",
                username=PAT,
                auth_method="password",
            ),
            password=PASSWORD_USERS[PAT],
        )
        mailbox_fetch(mailbox=mailbox)
        own.halt()
        for _ in range(3):  # three failed fetches: one incident's worth of news
            with pytest.raises(ServiceError):
                mailbox_fetch(mailbox=mailbox)
        own.resume()
        mailbox_fetch(mailbox=mailbox)
        mailbox_fetch(mailbox=mailbox)
    events = list(Event.objects.filter(mailbox_ref=mailbox.pk).values_list("type", flat=True))
    assert events == ["mailbox.failing", "mailbox.recovered"]
    failing = event_body(Event.objects.get(type="mailbox.failing"))["data"]
    assert failing["reason"] == "connect.refused" and failing["consecutive_failures"] == 1
