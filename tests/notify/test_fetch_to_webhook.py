"""500 messages fetched from the real Dovecot reach a subscribed endpoint as message.received:
each once after de-duplication by webhook-id (the receiver makes mailgrant retry some), the
mailbox's sequence gap-free from 1, the inline raw bytes those of the stored file."""

from __future__ import annotations

import base64
import uuid
from typing import Any

import pytest
from django.utils import timezone

from mailgrant.common.audit import CLI
from mailgrant.common.jobs import InlineContext
from mailgrant.mailboxes.models import Message
from mailgrant.mailboxes.services.fetch import mailbox_fetch
from mailgrant.mailboxes.store import store_root
from mailgrant.notify.jobs import deliveries_send_due, events_fan_out
from mailgrant.notify.models import Delivery
from mailgrant.notify.services.endpoints import webhook_endpoint_create
from tests.mailboxes.conftest import message
from tests.notify.receiver import Receiver, answer

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

COUNT = 500
RAW_MAX = 2000


def _every_seventh_fails(handler: Any, n: int) -> None:
    # Recorded as received, then answered 500: mailgrant sends it again, a duplicate.
    answer(500 if n % 7 == 0 else 200)(handler, n)


def test_500_fetched_messages_arrive_once_each_in_sequence_with_their_raw_bytes(
    dovecot, make_mailbox, settings
) -> None:
    settings.MAILGRANT_WEBHOOK_ALLOW_PRIVATE = True
    settings.MAILGRANT_WEBHOOK_IN_FLIGHT = COUNT
    user, password = f"hook-{uuid.uuid4().hex[:10]}@example.test", "hook-password"
    with (dovecot.root / "passwd").open("a", encoding="utf-8") as passwd:
        passwd.write(f"{user}:{{PLAIN}}{password}::::::\n")
    mailbox = make_mailbox(username=user, password=password, auth_method="password")
    tag = uuid.uuid4().hex
    dovecot.deliver(user, *[message(i, size=(i % 5) * 900, extra=tag) for i in range(COUNT)])
    with Receiver() as receiver:
        receiver.behaviours["/mail"] = _every_seventh_fails
        _, secret = webhook_endpoint_create(
            values={
                "name": "mail",
                "url": receiver.url("/mail"),
                "event_types": ["message.*"],
                "mailbox": mailbox.pk,
                "include_raw": True,
                "raw_max_bytes": RAW_MAX,
            },
            actor=CLI,
        )
        receiver.secrets["/mail"] = secret
        while mailbox_fetch(mailbox=mailbox).fetched:
            pass
        assert Message.objects.filter(mailbox=mailbox).count() == COUNT
        for _ in range(10):
            Delivery.objects.filter(state="pending").update(next_attempt_at=timezone.now())
            ctx = InlineContext(worker="w", now=timezone.now())
            events_fan_out(ctx)
            deliveries_send_due(ctx)
            if not Delivery.objects.filter(state="pending").exists():
                break
        assert not receiver.rejected
        got = receiver.at("/mail")
    assert len(got) > COUNT  # some were sent twice
    first: dict[str, Any] = {}
    for received in got:
        assert received.payload["id"] == received.id
        if received.id in first:
            assert received.payload["data"] == first[received.id]["data"]  # the same event
        first.setdefault(received.id, received.payload)
    assert len(first) == COUNT
    sequences = sorted(p["data"]["sequence"] for p in first.values())
    assert sequences == list(range(1, COUNT + 1))
    stored = {m.pk: m for m in Message.objects.filter(mailbox=mailbox)}
    inline = 0
    for payload in first.values():
        assert payload["type"] == "message.received"
        meta = payload["data"]["message"]
        row = stored[meta["id"]]
        assert meta["message_id"] == row.message_id and meta["raw_url"].endswith(f"/{row.pk}/raw")
        raw_file = (store_root() / row.path).read_bytes()
        if len(raw_file) <= RAW_MAX:
            assert base64.b64decode(meta["raw"]) == raw_file
            inline += 1
        else:
            assert "raw" not in meta  # too large: by URL only
    assert 0 < inline < COUNT
