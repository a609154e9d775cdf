"""Events: what changed, for the apps and people who need to know (webhooks, the events API,
alerts).

`event_record` writes one row of the outbox (common.models.Event) inside the transaction of the
change it reports: it refuses to run outside one, so an event can neither tell of a change
that was rolled back nor be lost after one that committed. Once the transaction commits the
workers are woken (topic "events") to fan it out to webhook deliveries.

Every type is listed in EVENT_TYPES with its payload version; a payload only gains fields
within a version. A body as delivered (`event_body`) follows the Standard Webhooks payload
structure: `type`, `timestamp`, `data`, and our `version` and `id`."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connections, router, transaction
from django.db.models import F, Model
from django.utils import timezone

from mailgrant.common.models import Event, EventSequence
from mailgrant.common.wakeup import wakeup_notify

WAKEUP_TOPIC = "events"


@dataclass(frozen=True)
class EventType:
    name: str
    version: int
    description: str


EVENT_TYPES: dict[str, EventType] = {
    t.name: t
    for t in (
        EventType("message.received", 1, "A fetched message is stored (durably) in mailgrant."),
        EventType("message.sent", 1, "An outgoing mailbox's server accepted a message."),
        EventType("grant.authorized", 1, "An account authorized a client (Validate, Authorize)."),
        EventType("grant.needs_reauthorization", 1, "The provider refused a grant for good."),
        EventType("grant.failing", 1, "A grant's refresh fails (the provider, the network)."),
        EventType("grant.recovered", 1, "A grant that needed attention is well again."),
        EventType("mailbox.failing", 1, "A mailbox's fetches or sends fail."),
        EventType("mailbox.recovered", 1, "A failing mailbox fetches or sends again."),
        EventType("client.secret_expiring", 1, "A client secret expires within 30 days."),
        EventType("client.secret_expired", 1, "A client secret has expired."),
        EventType("client.failing", 1, "The provider refuses the client itself."),
        EventType("client.recovered", 1, "A client that needed attention is well again."),
        EventType("directory.sync_failed", 1, "An LDAP directory's sync fails."),
        EventType("directory.recovered", 1, "A failing LDAP directory syncs again."),
        EventType("webhook.failing", 1, "A webhook endpoint has failed for a day."),
        EventType("webhook.recovered", 1, "A failing webhook endpoint takes deliveries again."),
        EventType("incident.opened", 1, "Something needs a person: what, since when, the fix."),
        EventType("incident.reminder", 1, "An incident still open (MAILGRANT_ALERT_REMIND)."),
        EventType("incident.resolved", 1, "An incident is over."),
        EventType("webhook.test", 1, "A test delivery asked for by a person."),
    )
}


class NotInTransaction(RuntimeError):
    """An event written outside its change's transaction could report a change that never
    happened, or be lost after one that did."""


def event_uid() -> str:
    """`evt_` and 28 hex digits, ordered by time (milliseconds) then random."""
    return f"evt_{int(time.time() * 1000):012x}{secrets.token_hex(8)}"


@dataclass(frozen=True)
class Subject:
    """What an event is about, as plain values (the model's label, id and name)."""

    type: str = ""
    id: str = ""
    name: str = ""

    @classmethod
    def of(cls, obj: Model) -> Subject:
        return cls(type=obj._meta.label_lower, id=str(obj.pk), name=str(obj)[:300])


def event_record(
    *,
    type: str,
    subject: Subject | Model | None = None,
    data: dict[str, Any],
    mailbox_id: int | None = None,
    client_id: int | None = None,
    sequence: int | None = None,
    at: datetime | None = None,
) -> Event:
    """Write an event of `type` (one of EVENT_TYPES) in the current transaction."""
    event = event_build(
        type=type,
        subject=subject,
        data=data,
        mailbox_id=mailbox_id,
        client_id=client_id,
        sequence=sequence,
        at=at,
    )
    return events_record([event])[0]


def events_record(events: Sequence[Event]) -> list[Event]:
    """Write `events` (built by `event_build`) in the current transaction, in one INSERT."""
    if not events:
        return []
    alias = router.db_for_write(Event)
    if not connections[alias].in_atomic_block:
        raise NotInTransaction("An event is written in the transaction of its change.")
    created = Event.objects.using(alias).bulk_create(events)
    wakeup_notify(WAKEUP_TOPIC)
    return created


def event_build(
    *,
    type: str,
    subject: Subject | Model | None = None,
    data: dict[str, Any],
    mailbox_id: int | None = None,
    client_id: int | None = None,
    sequence: int | None = None,
    at: datetime | None = None,
) -> Event:
    """An event not yet written (for `events_record`, many in one INSERT)."""
    if type not in EVENT_TYPES:
        raise ValueError(f"Unknown event type {type!r}: add it to EVENT_TYPES.")
    about = Subject.of(subject) if isinstance(subject, Model) else subject or Subject()
    return Event(
        uid=event_uid(),
        type=type,
        created_at=at or timezone.now(),
        subject_type=about.type,
        subject_id=about.id,
        subject_name=about.name,
        mailbox_ref=mailbox_id,
        client_ref=client_id,
        sequence=sequence,
        data=data,
    )


def event_sequence_take(*, key: str, count: int = 1) -> int:
    """The first of `count` consecutive numbers of the counter `key` (1 for its first), taken
    in the current transaction: the counter's row stays locked until it ends, and a rollback
    gives the numbers back, so the numbers that reach anyone have no gaps."""
    alias = router.db_for_write(EventSequence)
    if not connections[alias].in_atomic_block:
        raise NotInTransaction("A sequence number is taken in the transaction of its event.")
    manager = EventSequence.objects.using(alias)
    if not manager.filter(key=key).update(value=F("value") + count):
        try:
            with transaction.atomic(using=alias):  # a savepoint: a racing first insert
                manager.create(key=key, value=count)
            return 1
        except IntegrityError:  # the other insert won: count on from it
            manager.filter(key=key).update(value=F("value") + count)
    value = manager.filter(key=key).values_list("value", flat=True).get()
    return int(value) - count + 1


def event_body(event: Event) -> dict[str, Any]:
    """The event as delivered and as the API lists it (Standard Webhooks' payload shape)."""
    body: dict[str, Any] = {
        "id": event.uid,
        "type": event.type,
        "version": EVENT_TYPES[event.type].version if event.type in EVENT_TYPES else 1,
        "timestamp": event.created_at.isoformat().replace("+00:00", "Z"),
        "data": dict(event.data),
    }
    if event.subject_type:
        body["data"].setdefault(
            "object",
            {"type": event.subject_type, "id": event.subject_id, "name": event.subject_name},
        )
    if event.sequence is not None:
        body["data"]["sequence"] = event.sequence
    return body


def admin_url(obj: Model) -> str:
    """The absolute URL of `obj`'s page in the admin: the link that fixes it."""
    from django.urls import NoReverseMatch, reverse

    meta = obj._meta
    try:
        path = reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[obj.pk])
    except NoReverseMatch:
        return ""
    return f"{settings.MAILGRANT_BASE_URL}{path}"


def events_purge_expired(*, now: datetime, batch: int = 5000) -> int:
    """Events older than MAILGRANT_EVENT_RETENTION deleted (in batches: a large backlog never
    holds a long lock); how many."""
    from datetime import timedelta

    cutoff = now - timedelta(seconds=int(settings.MAILGRANT_EVENT_RETENTION))
    deleted = 0
    while True:
        ids = list(
            Event.objects.filter(created_at__lt=cutoff, dispatched=True).values_list(
                "pk", flat=True
            )[:batch]
        )
        if not ids:
            return deleted
        deleted += Event.objects.filter(pk__in=ids).delete()[0]


def event_types_valid(names: Iterable[str]) -> list[str]:
    """The names of `names` that are not event types (a `*` suffix matches a family, e.g.
    `grant.*`)."""
    bad = []
    for name in names:
        if name.endswith(".*"):
            if not any(t.startswith(name[:-1]) for t in EVENT_TYPES):
                bad.append(name)
        elif name not in EVENT_TYPES:
            bad.append(name)
    return bad


def event_type_matches(patterns: Sequence[str], type: str) -> bool:
    """Whether `type` is among `patterns` (empty: every type; `family.*` a family)."""
    if not patterns:
        return True
    return any(p == type or (p.endswith(".*") and type.startswith(p[:-1])) for p in patterns)
