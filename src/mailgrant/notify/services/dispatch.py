"""The fan-out: each event of the outbox becomes one Delivery for every enabled endpoint that
subscribes to it, and the event is marked dispatched, in one transaction per batch.

Undispatched events are found by their flag (a partial index), never by a high-water mark: an
event whose transaction committed after a later one's (a lower id seen late) is still found."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction

from mailgrant.common.events import event_type_matches
from mailgrant.common.models import Event
from mailgrant.notify.models import Delivery, WebhookEndpoint

BATCH = 500


def events_dispatch(*, now: datetime, batch: int = BATCH) -> int:
    """Fan out up to `batch` undispatched events, oldest first; how many were taken."""
    # A read first (the partial index): on SQLite the transaction below takes the write lock.
    if not Event.objects.filter(dispatched=False).exists():
        return 0
    with transaction.atomic():
        # PostgreSQL: workers fanning out at once take different events. SQLite: the IMMEDIATE
        # transaction holds the write lock from this read to the mark.
        events = list(
            Event.objects.filter(dispatched=False)
            .order_by("id")
            .select_for_update(skip_locked=True)
            .only("id", "type", "mailbox_ref", "client_ref")[:batch]
        )
        if not events:
            return 0
        endpoints = list(
            WebhookEndpoint.objects.filter(enabled=True).only(
                "id", "event_types", "mailbox_id", "client_id"
            )
        )
        deliveries = [
            Delivery(endpoint_id=endpoint.pk, event_id=event.pk, next_attempt_at=now)
            for event in events
            for endpoint in endpoints
            if endpoint_wants(endpoint, event)
        ]
        Delivery.objects.bulk_create(deliveries, ignore_conflicts=True, batch_size=1000)
        Event.objects.filter(pk__in=[e.pk for e in events]).update(dispatched=True)
    return len(events)


def endpoint_wants(endpoint: WebhookEndpoint, event: Event) -> bool:
    """Whether `endpoint`'s filters (types, mailbox, client) take `event`."""
    if endpoint.mailbox_id is not None and event.mailbox_ref != endpoint.mailbox_id:
        return False
    if endpoint.client_id is not None and event.client_ref != endpoint.client_id:
        return False
    return event_type_matches(endpoint.event_types or [], event.type)
