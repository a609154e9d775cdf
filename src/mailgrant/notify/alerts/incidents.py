"""Incidents, kept in step with the healths of the objects they are about.

State-based: each pass reads what is failing or needs re-authorization now and the open
incidents, then opens what has none, resolves what is well again (or gone, or switched off)
and reminds of what has lasted MAILGRANT_ALERT_REMIND since its last notice. A change of
health within the bad ones (failing to needs_reauthorization) is the same incident, and fifty
failed attempts in a row are one. Each change is its own short transaction with its notices,
won by one worker only: an open incident is unique per object (the constraint refuses a second
opening), and a resolve or reminder is a conditional update on what the pass read."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Model, QuerySet

from mailgrant.common.audit import Actor, AuditAction, audit_record
from mailgrant.common.events import admin_url
from mailgrant.common.models import HealthTracked
from mailgrant.directory.models import LdapDirectory
from mailgrant.mailboxes.models import Mailbox
from mailgrant.notify.alerts.notices import notices_write
from mailgrant.notify.models import (
    ALERT_HEALTHS,
    Incident,
    Notice,
    NotificationChannel,
    WebhookEndpoint,
)
from mailgrant.oauth.models import Grant, OAuthClient


@dataclass(frozen=True)
class Watched:
    """A kind of object incidents are about: which of its rows are watched (not switched off)
    and the mailbox and client an incident of one is filed under (channels filter by them)."""

    kind: str
    model: type[HealthTracked]
    watched: Callable[[], QuerySet[Any]]
    refs: Callable[[Any], tuple[int | None, int | None]]


WATCHED: tuple[Watched, ...] = (
    Watched(
        "grant",
        Grant,
        lambda: Grant.objects.select_related("client").filter(
            client__status=OAuthClient.Status.ENABLED
        ),
        lambda g: (None, g.client_id),
    ),
    Watched(
        "client",
        OAuthClient,
        lambda: OAuthClient.objects.filter(status=OAuthClient.Status.ENABLED),
        lambda c: (None, c.pk),
    ),
    Watched(
        "mailbox",
        Mailbox,
        lambda: Mailbox.objects.filter(enabled=True),
        lambda m: (m.pk, m.oauth_client_id),
    ),
    Watched(
        "directory",
        LdapDirectory,
        lambda: LdapDirectory.objects.filter(status=LdapDirectory.Status.ENABLED),
        lambda d: (None, None),
    ),
    Watched(
        "webhook",
        WebhookEndpoint,
        lambda: WebhookEndpoint.objects.filter(enabled=True),
        lambda w: (None, None),
    ),
)


@dataclass
class Reconciled:
    opened: int = 0
    updated: int = 0
    reminded: int = 0
    resolved: int = 0


def channel_hears(channel: NotificationChannel, incident: Incident) -> bool:
    """Whether `channel` is told of `incident` (its healths, kinds and object filters)."""
    if not channel.enabled or incident.health not in channel.healths:
        return False
    if incident.subject_kind not in channel.subject_kinds:
        return False
    if channel.only_mailbox_id is not None and incident.mailbox_ref != channel.only_mailbox_id:
        return False
    return channel.only_client_id is None or incident.client_ref == channel.only_client_id


def _key(obj: Model) -> tuple[str, str]:
    return (obj._meta.label_lower, str(obj.pk))


def incidents_reconcile(*, now: datetime, actor: Actor) -> Reconciled:
    """One pass: incidents opened, updated, reminded of and resolved to match the healths now."""
    done = Reconciled()
    remind = timedelta(seconds=int(settings.MAILGRANT_ALERT_REMIND))
    open_incidents = {
        (i.subject_type, i.subject_id): i for i in Incident.objects.filter(resolved_at=None)
    }
    told: dict[int, set[int]] = defaultdict(set)
    for incident_id, channel_id in Notice.objects.filter(
        incident__resolved_at=None, kind=Notice.Kind.OPENED
    ).values_list("incident_id", "channel_id"):
        told[incident_id].add(channel_id)
    channels = list(NotificationChannel.objects.filter(enabled=True))
    seen: set[tuple[str, str]] = set()
    for watched in WATCHED:
        for obj in watched.watched().filter(health__in=ALERT_HEALTHS):
            key = _key(obj)
            seen.add(key)
            incident = open_incidents.get(key)
            if incident is None:
                done.opened += _incident_open(
                    obj=obj, watched=watched, channels=channels, now=now, actor=actor
                )
                continue
            if (incident.health, incident.reason) != (obj.health, obj.health_reason):
                done.updated += _incident_follow(incident=incident, obj=obj)
            unheard = [
                c for c in channels if c.pk not in told[incident.pk] and channel_hears(c, incident)
            ]
            if unheard:
                _notices_add(incident=incident, channels=unheard, now=now)
            if incident.last_notice_at + remind <= now:
                hearing = [c for c in channels if c.pk in told[incident.pk]]
                done.reminded += _incident_remind(incident=incident, channels=hearing, now=now)
    for key, incident in open_incidents.items():
        if key not in seen:
            hearing = [c for c in channels if c.pk in told[incident.pk]]
            done.resolved += _incident_resolve(
                incident=incident, channels=hearing, now=now, actor=actor
            )
    return done


def _incident_open(
    *,
    obj: HealthTracked,
    watched: Watched,
    channels: Iterable[NotificationChannel],
    now: datetime,
    actor: Actor,
) -> int:
    mailbox_ref, client_ref = watched.refs(obj)
    incident = Incident(
        subject_type=obj._meta.label_lower,
        subject_id=str(obj.pk),
        subject_kind=watched.kind,
        subject_name=str(obj)[:300],
        mailbox_ref=mailbox_ref,
        client_ref=client_ref,
        health=obj.health,
        reason=obj.health_reason,
        hint=obj.health_hint,
        url=admin_url(obj),
        since=obj.health_since or now,
        opened_at=now,
        last_notice_at=now,
    )
    with transaction.atomic():
        try:
            with transaction.atomic():  # a savepoint: another worker opened it first
                incident.save()
        except IntegrityError:
            return 0
        notices_write(
            incident=incident,
            channels=[c for c in channels if channel_hears(c, incident)],
            kind=Notice.Kind.OPENED,
            now=now,
        )
        audit_record(
            actor=actor,
            target=obj,
            action=AuditAction.INCIDENT_OPENED,
            message=f"{incident.health}: {incident.reason}",
        )
    return 1


def _incident_follow(*, incident: Incident, obj: HealthTracked) -> int:
    """The same incident, its health or reason moved on (no notice for that alone)."""
    incident.health, incident.reason, incident.hint = (
        obj.health,
        obj.health_reason,
        obj.health_hint,
    )
    return Incident.objects.filter(pk=incident.pk, resolved_at=None).update(
        health=incident.health, reason=incident.reason, hint=incident.hint
    )


def _notices_add(*, incident: Incident, channels: list[NotificationChannel], now: datetime) -> None:
    """An opening notice for channels that now hear of an incident they were not told of (a
    channel added since, or a health it hears that the incident has only now)."""
    for channel in channels:
        try:
            with transaction.atomic():
                notices_write(
                    incident=incident, channels=[channel], kind=Notice.Kind.OPENED, now=now
                )
        except IntegrityError:  # another worker told it first
            continue


def _incident_remind(
    *, incident: Incident, channels: list[NotificationChannel], now: datetime
) -> int:
    with transaction.atomic():
        won = Incident.objects.filter(
            pk=incident.pk, resolved_at=None, reminders=incident.reminders
        ).update(reminders=F("reminders") + 1, last_notice_at=now)
        if not won:
            return 0
        incident.reminders += 1
        incident.last_notice_at = now
        notices_write(incident=incident, channels=channels, kind=Notice.Kind.REMINDER, now=now)
    return 1


def _resolution(incident: Incident) -> str:
    for watched in WATCHED:
        if watched.model._meta.label_lower != incident.subject_type:
            continue
        obj = watched.model._default_manager.filter(pk=incident.subject_id).first()
        if obj is None:
            return "deleted"
        if not watched.watched().filter(pk=obj.pk).exists() or obj.health == "disabled":
            return "switched off"
        return "ok again" if obj.health == "ok" else f"{obj.health} now"
    return "no longer watched"


def _incident_resolve(
    *, incident: Incident, channels: list[NotificationChannel], now: datetime, actor: Actor
) -> int:
    resolution = _resolution(incident)
    with transaction.atomic():
        won = Incident.objects.filter(pk=incident.pk, resolved_at=None).update(
            resolved_at=now, last_notice_at=now, resolution=resolution
        )
        if not won:
            return 0
        incident.resolved_at, incident.last_notice_at = now, now
        incident.resolution = resolution
        notices_write(incident=incident, channels=channels, kind=Notice.Kind.RESOLVED, now=now)
        audit_record(
            actor=actor,
            action=AuditAction.INCIDENT_RESOLVED,
            message=f"{incident}: {resolution}",
        )
    return 1
