"""Notices: what a channel is told of an incident, and sending it.

An email notice is written pending in the incident's transaction and sent by the worker
(`notice_send_claimed`), retried with backoff; a webhook channel's is an incident.* event with
its Delivery to that one endpoint, written in the same transaction, which the webhook delivery
engine sends like any other."""

from __future__ import annotations

import smtplib
from collections.abc import Sequence
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid

from django.conf import settings
from django.core import mail
from django.db import transaction

from mailgrant.common.audit import Actor, AuditAction, audit_record
from mailgrant.common.errors import ServiceError
from mailgrant.common.events import event_build, events_record
from mailgrant.common.health import backoff_seconds
from mailgrant.common.redaction import redact
from mailgrant.mailboxes.services.send import mailbox_send
from mailgrant.notify.models import Delivery, Incident, Notice, NotificationChannel

# An email notice is given up after this many failed sends (backoff from a minute to an hour:
# about half a day of trying); its last error stays on the row.
NOTICE_MAX_ATTEMPTS = 16
NOTICE_BACKOFF_BASE = 60.0
NOTICE_BACKOFF_CAP = 3600.0

SUBJECT_LABELS = {
    "grant": "Grant",
    "mailbox": "Mailbox",
    "client": "OAuth client",
    "directory": "LDAP directory",
    "webhook": "Webhook endpoint",
}
HEALTH_WORDS = {"failing": "failing", "needs_reauthorization": "needs re-authorization"}
EVENT_OF_KIND = {
    Notice.Kind.OPENED: "incident.opened",
    Notice.Kind.REMINDER: "incident.reminder",
    Notice.Kind.RESOLVED: "incident.resolved",
}


def notices_write(
    *,
    incident: Incident,
    channels: Sequence[NotificationChannel],
    kind: Notice.Kind,
    now: datetime,
) -> list[Notice]:
    """The notices of `kind` about `incident` for `channels`, in the current transaction (the
    incident's): pending for email, handed to a Delivery for a webhook channel."""
    written = []
    for channel in channels:
        notice = Notice(
            incident=incident,
            channel=channel,
            kind=kind,
            round=incident.reminders if kind == Notice.Kind.REMINDER else 0,
            created_at=now,
            next_attempt_at=now,
        )
        if channel.kind == NotificationChannel.Kind.WEBHOOK:
            notice.delivery = channel_delivery_write(
                channel=channel, type=EVENT_OF_KIND[kind], data=incident_data(incident), now=now
            )
            notice.state = Notice.State.HANDED
            notice.sent_at = now
            notice.next_attempt_at = None
        notice.save()
        written.append(notice)
    return written


def channel_delivery_write(
    *, channel: NotificationChannel, type: str, data: dict[str, object], now: datetime
) -> Delivery | None:
    if channel.endpoint_id is None:
        return None
    event = event_build(type=type, data=data, at=now)
    # For this channel's endpoint alone: the fan-out to subscribed endpoints passes it by.
    event.dispatched = True
    (event,) = events_record([event])
    return Delivery.objects.create(
        endpoint_id=channel.endpoint_id, event=event, next_attempt_at=now
    )


def incident_data(incident: Incident) -> dict[str, object]:
    """An incident as an incident.* event's data."""
    return {
        "incident": {
            "id": incident.pk,
            "health": incident.health,
            "reason": incident.reason,
            "hint": incident.hint,
            "url": incident.url,
            "since": incident.since.isoformat() if incident.since else None,
            "opened_at": incident.opened_at.isoformat(),
            "resolved_at": incident.resolved_at.isoformat() if incident.resolved_at else None,
            "resolution": incident.resolution,
            "reminders": incident.reminders,
        },
        "object": {
            "type": incident.subject_type,
            "kind": incident.subject_kind,
            "id": incident.subject_id,
            "name": incident.subject_name,
        },
    }


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _when(at: datetime | None) -> str:
    return f"{at:%Y-%m-%d %H:%M} UTC" if at else "an unknown time"


def notice_text(notice: Notice) -> tuple[str, str]:
    """The subject and plain-text body of an email notice."""
    channel = notice.channel
    incident = notice.incident
    footer = f"\n-- \nmailgrant, alert channel {channel.name!r}\n"
    if incident is None:
        return (
            f"[mailgrant] Test notice from channel {_one_line(channel.name)}",
            "This is a test notice: alerts of this channel reach you.\n\n"
            "You will be told when a grant, client, mailbox, LDAP directory or webhook "
            "endpoint it watches starts failing or needs re-authorization, reminded while it "
            "lasts, and told when it is over.\n" + footer,
        )
    what = f"{SUBJECT_LABELS.get(incident.subject_kind, incident.subject_kind)} " + _one_line(
        incident.subject_name
    )
    health = HEALTH_WORDS.get(incident.health, incident.health)
    reason = f": {incident.reason}" if incident.reason else ""
    fix = (f"What fixes it:\n  {incident.hint}\n\n" if incident.hint else "") + (
        f"Open it: {incident.url}\n" if incident.url else ""
    )
    remind = timedelta(seconds=int(settings.MAILGRANT_ALERT_REMIND))
    if notice.kind == Notice.Kind.RESOLVED:
        resolution = incident.resolution or "ok again"
        return (
            f"[mailgrant] Resolved: {what} {resolution}",
            f"{what} is {resolution} (since {_when(incident.resolved_at)}).\n\n"
            f"It was {health}{reason} from {_when(incident.since)}.\n"
            + (f"Open it: {incident.url}\n" if incident.url else "")
            + footer,
        )
    if notice.kind == Notice.Kind.REMINDER:
        subject = f"[mailgrant] Reminder: {what} still {health}{reason}"
        opening = f"{what} is still {health}{reason}, since {_when(incident.since)}.\n\n"
    else:
        subject = f"[mailgrant] {what} {health}{reason}"
        opening = f"{what} is {health}{reason}, since {_when(incident.since)}.\n\n"
    return (
        subject,
        opening
        + fix
        + f"\nYou get a reminder every {_duration(remind)} while it lasts, and one notice when "
        "it is over; none for each failed attempt.\n" + footer,
    )


def _duration(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    if seconds % 3600 == 0:
        hours = seconds // 3600
        return f"{hours} hour{'s' if hours != 1 else ''}"
    minutes = max(seconds // 60, 1)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def notice_deliver(notice: Notice, *, actor: Actor) -> None:
    """Send an email notice now, through the channel's outgoing mailbox or Django's SMTP
    settings; raises what the sending raised."""
    channel = notice.channel
    subject, body = notice_text(notice)
    recipients = [str(r) for r in channel.recipients]
    if channel.mailbox is None:
        mail.EmailMessage(
            subject=subject,
            body=body,
            from_email=settings.DEFAULT_FROM_EMAIL,
            to=recipients,
        ).send()
        return
    message = EmailMessage()
    message["From"] = channel.mailbox.username
    message["To"] = ", ".join(recipients)
    message["Subject"] = subject
    message["Date"] = format_datetime(notice.created_at)
    domain = channel.mailbox.username.rpartition("@")[2] or "mailgrant"
    message["Message-ID"] = make_msgid(domain=domain)
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(body)
    mailbox_send(
        mailbox=channel.mailbox,
        recipients=recipients,
        raw=message.as_bytes(policy=SMTP),
        actor=actor,
    )


SEND_ERRORS = (ServiceError, smtplib.SMTPException, OSError)


def notice_send_claimed(*, notice_id: int, worker: str, actor: Actor, now: datetime) -> str:
    """Send the notice `worker` claimed; its outcome recorded (sent, or failed with backoff,
    given up after NOTICE_MAX_ATTEMPTS); "skipped" when the claim is no longer its own."""
    notice = (
        Notice.objects.select_related("channel__mailbox", "incident")
        .filter(pk=notice_id, claimed_by=worker, state=Notice.State.PENDING)
        .first()
    )
    if notice is None:
        return "skipped"
    error = ""
    try:
        notice_deliver(notice, actor=actor)
    except SEND_ERRORS as exc:
        error = redact(getattr(exc, "message", "") or str(exc) or type(exc).__name__)[:2000]
    attempts = notice.attempts + 1
    changes: dict[str, object] = {"attempts": attempts, "claimed_by": "", "claimed_until": None}
    if not error:
        changes |= {"state": Notice.State.SENT, "sent_at": now, "last_error": ""}
        outcome = "sent"
    elif attempts >= NOTICE_MAX_ATTEMPTS:
        changes |= {"state": Notice.State.FAILED, "last_error": error, "next_attempt_at": None}
        outcome = "failed"
    else:
        wait = backoff_seconds(attempts, base=NOTICE_BACKOFF_BASE, cap=NOTICE_BACKOFF_CAP)
        changes |= {"last_error": error, "next_attempt_at": now + timedelta(seconds=wait)}
        outcome = "retry"
    with transaction.atomic():
        Notice.objects.filter(pk=notice.pk, claimed_by=worker).update(**changes)
        audit_record(
            actor=actor,
            target=notice.channel,
            action=AuditAction.NOTICE_SENT,
            outcome="ok" if not error else "failed",
            message=f"{notice.kind} notice" + (f": {error}" if error else ""),
        )
    return outcome
