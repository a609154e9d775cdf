"""Notification channels: who hears of incidents, and how (services)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from django.db import IntegrityError, models, transaction
from django.utils import timezone

from mailgrant.common.audit import Actor, AuditAction, audit_record
from mailgrant.common.errors import Conflict, Invalid, PeerFailed
from mailgrant.mailboxes.models import Mailbox
from mailgrant.mailboxes.protocol.compose import MessageInvalid, check_addresses
from mailgrant.notify.alerts.notices import SEND_ERRORS, channel_delivery_write, notice_deliver
from mailgrant.notify.models import (
    ALERT_HEALTHS,
    ALERT_KINDS,
    Notice,
    NotificationChannel,
    WebhookEndpoint,
)
from mailgrant.oauth.models import OAuthClient

# What an update may change (the model's fields a person sets), in the forms' order.
CHANNEL_FIELDS = (
    "name",
    "kind",
    "enabled",
    "recipients",
    "mailbox",
    "endpoint",
    "healths",
    "subject_kinds",
    "only_mailbox",
    "only_client",
)
Ref = models.Model | int | str | None


def _find(model: type[models.Model], value: Ref, *, field: str) -> Any:
    """The row `value` names: itself, its id, or its name; None for none."""
    if value is None or value == "":
        return None
    if isinstance(value, model):
        return value
    if isinstance(value, models.Model):
        raise Invalid({field: f"Not a {model._meta.verbose_name}."})
    manager = model._default_manager
    found = None
    if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
        found = manager.filter(pk=int(value)).first()
    if found is None and isinstance(value, str):
        found = manager.filter(name=value).first()
    if found is None:
        raise Invalid({field: f"No {model._meta.verbose_name} {value!r}."})
    return found


def _list_of(value: Any, *, field: str, allowed: Sequence[str]) -> list[str]:
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise Invalid({field: "A list is needed."})
    bad = [str(v) for v in value if v not in allowed]
    if bad:
        raise Invalid({field: f"Unknown: {', '.join(bad)} (choose from {', '.join(allowed)})."})
    if not value:
        raise Invalid({field: f"Choose at least one of {', '.join(allowed)}."})
    return list(dict.fromkeys(value))


def _apply(channel: NotificationChannel, values: Mapping[str, Any]) -> dict[str, str]:
    """`values` set on `channel`; field -> what is wrong with the value given."""
    errors = {name: "Not a channel field." for name in sorted(set(values) - set(CHANNEL_FIELDS))}
    for name, value in values.items():
        try:
            if name in ("mailbox", "only_mailbox"):
                setattr(channel, name, _find(Mailbox, value, field=name))
            elif name == "endpoint":
                channel.endpoint = _find(WebhookEndpoint, value, field=name)
            elif name == "only_client":
                channel.only_client = _find(OAuthClient, value, field=name)
            elif name == "healths":
                channel.healths = _list_of(value, field=name, allowed=ALERT_HEALTHS)
            elif name == "subject_kinds":
                channel.subject_kinds = _list_of(value, field=name, allowed=ALERT_KINDS)
            elif name == "recipients":
                if isinstance(value, str) or not isinstance(value, list | tuple):
                    raise Invalid({name: "A list of addresses is needed."})
                channel.recipients = [str(v).strip() for v in value if str(v).strip()]
            elif name == "enabled":
                if not isinstance(value, bool):
                    raise Invalid({name: "true or false."})
                channel.enabled = value
            else:
                setattr(channel, name, str(value).strip() if value is not None else "")
        except Invalid as exc:
            errors.update(exc.fields)
    return errors


def _check(channel: NotificationChannel, *, given: dict[str, str]) -> None:
    """Every rule of a channel, with the errors of the values `given`; Invalid naming each
    field at fault."""
    errors = {**notification_channel_errors(channel=channel), **given}
    if errors:
        raise Invalid(errors)


def notification_channel_errors(*, channel: NotificationChannel) -> dict[str, str]:
    """Field -> what breaks a channel's rules (for a form to show before saving); empty when
    it is valid."""
    errors: dict[str, str] = {}
    if not channel.name:
        errors["name"] = "A name is needed."
    elif len(channel.name) > 100:
        errors["name"] = "At most 100 characters."
    if channel.kind not in NotificationChannel.Kind.values:
        errors["kind"] = "email or webhook."
    elif channel.kind == NotificationChannel.Kind.EMAIL:
        if not channel.recipients:
            errors["recipients"] = "An email channel needs at least one address."
        else:
            try:
                check_addresses("recipients", channel.recipients)
            except MessageInvalid as exc:
                errors["recipients"] = exc.message
        if channel.mailbox is not None and channel.mailbox.protocol != Mailbox.Protocol.SMTP:
            errors["mailbox"] = (
                f"{channel.mailbox.name} is not an outgoing (SMTP) mailbox: choose one that "
                "sends, or none for Django's SMTP settings."
            )
        if channel.endpoint_id is not None:
            errors["endpoint"] = "Only a webhook channel has an endpoint."
    else:
        if channel.endpoint_id is None:
            errors["endpoint"] = "A webhook channel needs the endpoint it notifies."
        if channel.recipients:
            errors["recipients"] = "Only an email channel has recipients."
        if channel.mailbox_id is not None:
            errors["mailbox"] = "Only an email channel sends through a mailbox."
    return errors


def _save(channel: NotificationChannel, *, action: AuditAction, actor: Actor) -> None:
    taken = NotificationChannel.objects.filter(name=channel.name).exclude(pk=channel.pk)
    if taken.exists():
        raise Conflict(f"A channel named {channel.name!r} exists.", fields={"name": "taken"})
    try:
        with transaction.atomic():
            channel.save()
            audit_record(actor=actor, target=channel, action=action, message=channel.kind)
    except IntegrityError:
        raise Conflict(
            f"A channel named {channel.name!r} exists.", fields={"name": "taken"}
        ) from None


def notification_channel_create(
    *,
    name: str,
    kind: str = NotificationChannel.Kind.EMAIL,
    recipients: Sequence[str] = (),
    mailbox: Ref = None,
    endpoint: Ref = None,
    healths: Sequence[str] = ALERT_HEALTHS,
    subject_kinds: Sequence[str] = ALERT_KINDS,
    only_mailbox: Ref = None,
    only_client: Ref = None,
    enabled: bool = True,
    actor: Actor,
) -> NotificationChannel:
    """A new channel; Invalid (every field at fault) or Conflict (its name) saves nothing."""
    channel = NotificationChannel()
    errors = _apply(
        channel,
        {
            "name": name,
            "kind": kind,
            "recipients": list(recipients),
            "mailbox": mailbox,
            "endpoint": endpoint,
            "healths": list(healths),
            "subject_kinds": list(subject_kinds),
            "only_mailbox": only_mailbox,
            "only_client": only_client,
            "enabled": enabled,
        },
    )
    _check(channel, given=errors)
    _save(channel, action=AuditAction.NOTIFICATION_CHANNEL_CREATED, actor=actor)
    return channel


def notification_channel_update(
    *, channel: NotificationChannel, changes: Mapping[str, Any], actor: Actor
) -> NotificationChannel:
    """`channel` with `changes` (field -> value, as create takes them) applied and saved; on
    any error the stored row is unchanged."""
    stored = NotificationChannel.objects.get(pk=channel.pk)
    _check(stored, given=_apply(stored, changes))
    _save(stored, action=AuditAction.NOTIFICATION_CHANNEL_UPDATED, actor=actor)
    return stored


def notification_channel_delete(*, channel: NotificationChannel, actor: Actor) -> None:
    """Delete `channel` and its notices."""
    with transaction.atomic():
        audit_record(actor=actor, target=channel, action=AuditAction.NOTIFICATION_CHANNEL_DELETED)
        channel.delete()


def notification_channel_test(*, channel: NotificationChannel, actor: Actor) -> Notice:
    """A test notice through `channel`, now: an email sent at once (PeerFailed with the
    server's words when it fails), or a webhook.test event handed to the endpoint's delivery.
    Its Notice row records the outcome."""
    now = timezone.now()
    notice = Notice(channel=channel, kind=Notice.Kind.TEST, created_at=now)
    if channel.kind == NotificationChannel.Kind.WEBHOOK:
        with transaction.atomic():
            notice.delivery = channel_delivery_write(
                channel=channel,
                type="webhook.test",
                data={"test": True, "channel": {"id": channel.pk, "name": channel.name}},
                now=now,
            )
            notice.state, notice.sent_at = Notice.State.HANDED, now
            notice.save()
            audit_record(
                actor=actor, target=channel, action=AuditAction.NOTIFICATION_CHANNEL_TESTED
            )
        return notice
    error = ""
    try:
        notice_deliver(notice, actor=actor)
    except SEND_ERRORS as exc:
        error = getattr(exc, "message", "") or str(exc) or type(exc).__name__
    notice.attempts = 1
    notice.state = Notice.State.FAILED if error else Notice.State.SENT
    notice.sent_at = None if error else timezone.now()
    notice.last_error = error[:2000]
    with transaction.atomic():
        notice.save()
        audit_record(
            actor=actor,
            target=channel,
            action=AuditAction.NOTIFICATION_CHANNEL_TESTED,
            outcome="failed" if error else "ok",
            message=error,
        )
    if error:
        raise PeerFailed(f"The test notice was not sent: {error}")
    return notice
