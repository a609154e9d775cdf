"""The outbox (common.events): an event only inside its change's transaction, gone with a
rollback and kept with a commit; the events a change of health reports, once per change;
gap-free sequences."""

from __future__ import annotations

import pytest
from django.db import transaction
from django.utils import timezone

from mailgrant.common.events import (
    EVENT_TYPES,
    NotInTransaction,
    event_body,
    event_record,
    event_sequence_take,
    event_type_matches,
    event_types_valid,
)
from mailgrant.common.health import Health, reason_of
from mailgrant.common.models import Event
from mailgrant.mailboxes.models import Mailbox
from mailgrant.oauth.models import Grant, OAuthClient
from tests.worker import world

pytestmark = pytest.mark.django_db(transaction=True)


class Boom(Exception):
    pass


def test_an_event_outside_a_transaction_is_refused() -> None:
    with pytest.raises(NotInTransaction):
        event_record(type="webhook.test", data={})
    assert not Event.objects.exists()


def test_an_unknown_type_is_refused() -> None:
    with transaction.atomic(), pytest.raises(ValueError, match="Unknown event type"):
        event_record(type="message.recieved", data={})


def test_a_change_rolled_back_leaves_no_event_and_a_committed_one_leaves_one() -> None:
    mailbox = world.mailbox(name="rolled")
    with pytest.raises(Boom), transaction.atomic():
        mailbox.save(
            update_fields=mailbox.health_failed(
                reason=reason_of("connect.refused"), now=timezone.now()
            )
        )
        assert Event.objects.filter(type="mailbox.failing").count() == 1  # inside, it is there
        raise Boom
    assert not Event.objects.exists()
    assert Mailbox.objects.get(pk=mailbox.pk).health == "ok"

    mailbox = Mailbox.objects.get(pk=mailbox.pk)
    mailbox.save(
        update_fields=mailbox.health_failed(reason=reason_of("connect.refused"), now=timezone.now())
    )
    event = Event.objects.get()
    assert (event.type, event.mailbox_ref, event.subject_name) == (
        "mailbox.failing",
        mailbox.pk,
        "rolled",
    )
    body = event_body(event)
    assert body["data"]["reason"] == "connect.refused" and body["data"]["health"] == "failing"
    assert body["data"]["hint"] and body["data"]["url"].endswith(f"/mailbox/{mailbox.pk}/change/")
    assert body["id"] == event.uid and body["type"] == "mailbox.failing" and body["version"] == 1


def test_health_events_once_per_change() -> None:
    mailbox = world.mailbox(name="flappy")
    now = timezone.now()

    def fail(code: str) -> None:
        mailbox.save(update_fields=mailbox.health_failed(reason=reason_of(code), now=now))

    fail("connect.refused")
    fail("connect.refused")  # still failing: no second event
    fail("tls.failed")  # another reason, same health: none
    fail("grant.needs_reauthorization")  # needs_reauthorization reports as mailbox.failing too
    mailbox.save(update_fields=mailbox.health_succeeded(now=now))
    mailbox.save(update_fields=mailbox.health_succeeded(now=now))  # ok again: nothing new
    mailbox.save(update_fields=mailbox.health_set(health=Health.WARNING, now=now))
    mailbox.save(update_fields=mailbox.health_succeeded(now=now))  # warning to ok: no recovery
    assert list(Event.objects.values_list("type", flat=True)) == [
        "mailbox.failing",
        "mailbox.recovered",
    ]


def test_a_grants_and_a_clients_events() -> None:
    client = OAuthClient.objects.create(
        name="events-client", provider="generic", client_id="x", token_url="https://t.invalid"
    )
    grant = Grant.objects.create(client=client, account="a@example.test")
    now = timezone.now()
    grant.save(
        update_fields=grant.health_failed(reason=reason_of("refresh.invalid_grant"), now=now)
    )
    grant.save(update_fields=grant.health_succeeded(now=now))
    client.save(
        update_fields=client.health_failed(reason=reason_of("client.secret_expiring"), now=now)
    )
    client.save(
        update_fields=client.health_failed(reason=reason_of("client.secret_expired"), now=now)
    )
    events = list(Event.objects.values_list("type", "client_ref"))
    assert events == [
        ("grant.needs_reauthorization", client.pk),
        ("grant.recovered", client.pk),
        ("client.secret_expiring", client.pk),
        ("client.secret_expired", client.pk),
    ]


def test_sequences_are_gap_free_across_rollbacks() -> None:
    with transaction.atomic():
        assert event_sequence_take(key="mailbox:1", count=3) == 1
    with pytest.raises(Boom), transaction.atomic():
        assert event_sequence_take(key="mailbox:1", count=5) == 4
        raise Boom
    with transaction.atomic():
        assert event_sequence_take(key="mailbox:1") == 4  # the rolled-back numbers again
        assert event_sequence_take(key="mailbox:2") == 1
    with pytest.raises(NotInTransaction):
        event_sequence_take(key="mailbox:1")


def test_type_patterns() -> None:
    assert event_types_valid(["grant.*", "message.received", "nope", "nothing.*"]) == [
        "nope",
        "nothing.*",
    ]
    assert event_type_matches([], "grant.authorized")
    assert event_type_matches(["grant.*"], "grant.authorized")
    assert not event_type_matches(["grant.*"], "mailbox.failing")
    assert all(t.version >= 1 and t.description for t in EVENT_TYPES.values())
