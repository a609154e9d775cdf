"""Reads of channels and incidents, as plain values for the API and the command line."""

from __future__ import annotations

from typing import Any

from mailgrant.notify.models import Incident, NotificationChannel


def channel_values(channel: NotificationChannel) -> dict[str, Any]:
    return {
        "id": channel.pk,
        "name": channel.name,
        "kind": channel.kind,
        "enabled": channel.enabled,
        "recipients": list(channel.recipients),
        "mailbox": channel.mailbox.name if channel.mailbox else None,
        "endpoint": channel.endpoint.name if channel.endpoint else None,
        "healths": list(channel.healths),
        "subject_kinds": list(channel.subject_kinds),
        "only_mailbox": channel.only_mailbox.name if channel.only_mailbox else None,
        "only_client": channel.only_client.name if channel.only_client else None,
    }


def channels_list() -> list[NotificationChannel]:
    return list(
        NotificationChannel.objects.select_related(
            "mailbox", "endpoint", "only_mailbox", "only_client"
        )
    )


def incident_values(incident: Incident) -> dict[str, Any]:
    return {
        "id": incident.pk,
        "kind": incident.subject_kind,
        "object_type": incident.subject_type,
        "object_id": incident.subject_id,
        "name": incident.subject_name,
        "health": incident.health,
        "reason": incident.reason,
        "hint": incident.hint,
        "url": incident.url,
        "since": incident.since,
        "opened_at": incident.opened_at,
        "last_notice_at": incident.last_notice_at,
        "reminders": incident.reminders,
        "resolved_at": incident.resolved_at,
        "resolution": incident.resolution,
    }
