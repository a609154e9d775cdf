"""Reads of events, webhook endpoints and their deliveries, as the API, the command line and the
admin show them (never an endpoint's secret)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Prefetch, Q, QuerySet
from django.utils import timezone

from mailgrant.common.errors import Invalid, NotFound
from mailgrant.common.events import event_types_valid
from mailgrant.common.models import Event
from mailgrant.notify.models import Delivery, DeliveryAttempt, WebhookEndpoint

# Ids looked at per page to find how far the events are settled (cheap: the primary key).
SETTLE_SCAN = 5000


@dataclass(frozen=True)
class EventsPage:
    events: list[Event]
    next: str  # the cursor to poll from next: the last id looked at, matched or not
    has_more: bool


def event_cursor_id(*, after: str) -> int:
    """The id a cursor stands for: an event's id as `next` gave it, or its uid (evt_...)."""
    text = after.strip()
    # ASCII digits only ("³" is a digit to str.isdigit), and few enough for a database integer.
    if text.isascii() and text.isdigit() and len(text) <= 18:
        return int(text)
    found = Event.objects.filter(uid=text).values_list("pk", flat=True).first()
    if found is None:
        raise Invalid(
            {"after": f"no event {text!r} (expired, or not an id): poll with the `next` cursor."}
        )
    return int(found)


def events_page(
    *,
    types: Sequence[str] = (),
    mailbox: int | None = None,
    client: int | None = None,
    subject: str = "",
    since: datetime | None = None,
    until: datetime | None = None,
    after: str = "",
    limit: int = 100,
    now: datetime | None = None,
) -> EventsPage:
    """Events oldest first, after the cursor `after`, filtered; every event exactly once
    across pages however they are polled.

    Ids are taken at insert and committed in any order on PostgreSQL: an event may become
    visible after a later id was read. A page therefore ends before the first id missing
    from the run after the cursor, while the event after that gap is newer than
    MAILGRANT_EVENTS_SETTLE (a gap older than that is a rolled-back insert)."""
    bad = event_types_valid(types)
    if bad:
        raise Invalid({"type": f"no such event type: {', '.join(bad)}."})
    start = event_cursor_id(after=after) if after else 0
    settled = _settled_through(start=start, now=now or timezone.now())
    matching = _filtered(
        Event.objects.filter(pk__gt=start, pk__lte=settled),
        types=types,
        mailbox=mailbox,
        client=client,
        subject=subject,
        since=since,
        until=until,
    ).order_by("pk")
    events = list(matching[: limit + 1])
    has_more = len(events) > limit
    events = events[:limit]
    cursor = events[-1].pk if has_more else max(settled, start)
    if not has_more and settled > start:
        has_more = Event.objects.filter(pk__gt=settled).exists()
    return EventsPage(events=events, next=str(cursor), has_more=has_more)


def _settled_through(*, start: int, now: datetime) -> int:
    """The highest id through which no event after `start` can still appear."""
    fresh = now - timedelta(seconds=float(settings.MAILGRANT_EVENTS_SETTLE))
    rows = Event.objects.filter(pk__gt=start).order_by("pk").values_list("pk", "created_at")
    previous = start
    for pk, created_at in rows[:SETTLE_SCAN]:
        if previous and pk != previous + 1 and created_at > fresh:
            break
        previous = pk
    return previous


def _filtered(
    events: QuerySet[Event],
    *,
    types: Sequence[str],
    mailbox: int | None,
    client: int | None,
    subject: str,
    since: datetime | None,
    until: datetime | None,
) -> QuerySet[Event]:
    if types:
        match = Q()
        for name in types:
            match |= Q(type__startswith=name[:-1]) if name.endswith(".*") else Q(type=name)
        events = events.filter(match)
    if mailbox is not None:
        events = events.filter(mailbox_ref=mailbox)
    if client is not None:
        events = events.filter(client_ref=client)
    if subject:
        kind, _, ident = subject.partition(":")
        events = events.filter(subject_type=kind, **({"subject_id": ident} if ident else {}))
    if since is not None:
        events = events.filter(created_at__gte=since)
    if until is not None:
        events = events.filter(created_at__lt=until)
    return events


def event_get(*, uid: str) -> Event:
    found = Event.objects.filter(uid=uid).first()
    if found is None:
        raise NotFound(f"No event {uid!r} (events are kept MAILGRANT_EVENT_RETENTION).")
    return found


def webhook_endpoint_list() -> QuerySet[WebhookEndpoint]:
    return WebhookEndpoint.objects.select_related("mailbox", "client")


def webhook_endpoint_get(*, endpoint_id: int) -> WebhookEndpoint:
    found = webhook_endpoint_list().filter(pk=endpoint_id).first()
    if found is None:
        raise NotFound(f"No webhook endpoint {endpoint_id}.")
    return found


def webhook_endpoint_get_by_name(*, name: str) -> WebhookEndpoint:
    found = webhook_endpoint_list().filter(name=name).first()
    if found is None:
        raise NotFound(f"No webhook endpoint named {name!r}.")
    return found


def webhook_endpoint_public(*, endpoint: WebhookEndpoint) -> dict[str, Any]:
    """What anyone may see of an endpoint: everything but its secret (whether it has one)."""
    return {
        "id": endpoint.pk,
        "name": endpoint.name,
        "url": endpoint.url,
        "enabled": endpoint.enabled,
        "event_types": list(endpoint.event_types or []),
        "mailbox": endpoint.mailbox_id,
        "client": endpoint.client_id,
        "include_raw": endpoint.include_raw,
        "raw_max_bytes": endpoint.raw_max_bytes,
        "has_secret": bool(endpoint.secret),
        "disabled_reason": endpoint.disabled_reason,
        "failing_since": endpoint.failing_since,
        "last_success_at": endpoint.last_success_at,
        "created_at": endpoint.created_at,
        "updated_at": endpoint.updated_at,
        "health": endpoint.health,
        "health_reason": endpoint.health_reason,
        "health_hint": endpoint.health_hint,
        "health_since": endpoint.health_since,
        "consecutive_failures": endpoint.consecutive_failures,
    }


def delivery_list(
    *, endpoint: WebhookEndpoint, state: str | None = None, attempts: int = 20
) -> QuerySet[Delivery]:
    """`endpoint`'s deliveries, newest first, each with its latest `attempts` attempts."""
    deliveries = Delivery.objects.filter(endpoint=endpoint).select_related("event")
    if state:
        deliveries = deliveries.filter(state=state)
    return deliveries.prefetch_related(
        Prefetch("attempt_log", queryset=DeliveryAttempt.objects.order_by("-at", "-id"))
    )


def delivery_get(*, endpoint: WebhookEndpoint, delivery_id: int) -> Delivery:
    found = Delivery.objects.filter(endpoint=endpoint, pk=delivery_id).select_related("event")
    delivery = found.first()
    if delivery is None:
        raise NotFound(f"No delivery {delivery_id} to webhook endpoint {endpoint.name!r}.")
    return delivery


def delivery_public(*, delivery: Delivery, attempts: int = 20) -> dict[str, Any]:
    log = list(delivery.attempt_log.all())[:attempts]
    return {
        "id": delivery.pk,
        "event": delivery.event.uid,
        "event_type": delivery.event.type,
        "state": delivery.state,
        "attempts": delivery.attempts,
        "next_attempt_at": delivery.next_attempt_at,
        "created_at": delivery.created_at,
        "delivered_at": delivery.delivered_at,
        "last_status": delivery.last_status,
        "last_error": delivery.last_error,
        "attempt_log": [
            {
                "at": a.at,
                "status_code": a.status_code,
                "duration_ms": a.duration_ms,
                "response_head": a.response_head,
                "error": a.error,
            }
            for a in log
        ],
    }
