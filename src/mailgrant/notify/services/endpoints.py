"""Webhook endpoints: created and changed from plain values (every rule here, whichever entry
point asks), deleted, their signing secret rotated, a test event sent, deliveries asked for
again. The secret is returned once, by the call that makes it, and never read back."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from django.db import transaction
from django.utils import timezone

from mailgrant.common.audit import SYSTEM, Actor, AuditAction, audit_record
from mailgrant.common.errors import Conflict, Invalid
from mailgrant.common.events import event_record, event_types_valid
from mailgrant.common.health import Health
from mailgrant.common.models import Event
from mailgrant.common.validation import model_errors
from mailgrant.common.wakeup import wakeup_notify
from mailgrant.mailboxes.models import Mailbox
from mailgrant.notify.models import Delivery, WebhookEndpoint
from mailgrant.oauth.models import OAuthClient

# What the workers are woken about when a delivery is due.
DELIVERIES_TOPIC = "deliveries"
# What an endpoint is made of, as the API, the command line and the admin give it.
WEBHOOK_FIELDS = (
    "name",
    "url",
    "enabled",
    "event_types",
    "mailbox",
    "client",
    "include_raw",
    "raw_max_bytes",
)
# Inline raw messages are base64 in a JSON body: beyond this a receiver fetches raw_url.
RAW_MAX_BYTES_LIMIT = 25 * 1024 * 1024
SECRET_PREFIX = "whsec_"


def webhook_secret_new() -> str:
    """A Standard Webhooks signing secret: whsec_ and the base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def webhook_endpoint_create(
    *, values: Mapping[str, Any], actor: Actor = SYSTEM
) -> tuple[WebhookEndpoint, str]:
    """A new endpoint from `values` (WEBHOOK_FIELDS; the mailbox and client by id or name)
    and its signing secret, which is shown this once."""
    endpoint = WebhookEndpoint()
    _apply(endpoint=endpoint, values=values)
    _check(endpoint=endpoint)
    secret = webhook_secret_new()
    endpoint.secret = secret  # type: ignore[assignment]  # sealed on save
    with transaction.atomic():
        endpoint.save()
        audit_record(actor=actor, target=endpoint, action=AuditAction.WEBHOOK_ENDPOINT_CREATED)
    return endpoint, secret


def webhook_endpoint_update(
    *, endpoint: WebhookEndpoint, values: Mapping[str, Any], actor: Actor = SYSTEM
) -> WebhookEndpoint:
    """Change the fields given in `values`; the others stay. Enabling an endpoint again (one
    a 410 disabled, say) is a fresh start for its health."""
    was_enabled = WebhookEndpoint.objects.filter(pk=endpoint.pk, enabled=True).exists()
    _apply(endpoint=endpoint, values=values)
    _check(endpoint=endpoint)
    now = timezone.now()
    if endpoint.enabled and not was_enabled:
        endpoint.disabled_reason = ""
        endpoint.failing_since = None
        endpoint.health_restart_on_change(fields=(), forced=True, now=now)
    elif not endpoint.enabled and was_enabled:
        endpoint.health_set(
            health=Health.DISABLED, hint="Enable it to take deliveries again.", now=now
        )
    with transaction.atomic():
        endpoint.save()
        audit_record(actor=actor, target=endpoint, action=AuditAction.WEBHOOK_ENDPOINT_UPDATED)
    return endpoint


def webhook_endpoint_delete(*, endpoint: WebhookEndpoint, actor: Actor = SYSTEM) -> None:
    """Delete `endpoint` with its deliveries and their log (the events stay)."""
    with transaction.atomic():
        audit_record(actor=actor, target=endpoint, action=AuditAction.WEBHOOK_ENDPOINT_DELETED)
        endpoint.delete()


def webhook_endpoint_rotate_secret(*, endpoint: WebhookEndpoint, actor: Actor = SYSTEM) -> str:
    """A new signing secret for `endpoint`, returned this once; the old one stops at once."""
    secret = webhook_secret_new()
    endpoint.secret = secret  # type: ignore[assignment]  # sealed on save
    with transaction.atomic():
        endpoint.save(update_fields=["secret", "updated_at"])
        audit_record(
            actor=actor, target=endpoint, action=AuditAction.WEBHOOK_ENDPOINT_SECRET_ROTATED
        )
    return secret


def webhook_endpoint_test(*, endpoint: WebhookEndpoint, actor: Actor = SYSTEM) -> Delivery:
    """A webhook.test event for `endpoint` alone, its delivery due at once."""
    now = timezone.now()
    with transaction.atomic():
        event = event_record(
            type="webhook.test",
            subject=endpoint,
            data={"message": "A test delivery asked for by a person.", "actor": actor.name},
            at=now,
        )
        # Delivered to this endpoint only, not fanned out to every endpoint that takes all.
        Event.objects.filter(pk=event.pk).update(dispatched=True)
        delivery = Delivery.objects.create(endpoint=endpoint, event=event, next_attempt_at=now)
        audit_record(actor=actor, target=endpoint, action=AuditAction.WEBHOOK_ENDPOINT_TESTED)
        wakeup_notify(DELIVERIES_TOPIC)
    return delivery


def delivery_redeliver(*, delivery: Delivery, actor: Actor = SYSTEM) -> Delivery:
    """Deliver `delivery`'s event again (same webhook-id), at once, with a fresh retry
    schedule; a delivery under way is left to finish."""
    now = timezone.now()
    with transaction.atomic():
        _redeliver(Delivery.objects.filter(pk=delivery.pk), now=now)
        audit_record(
            actor=actor,
            target=delivery.endpoint,
            action=AuditAction.DELIVERY_REDELIVERED,
            message=f"event {delivery.event.uid}",
        )
        wakeup_notify(DELIVERIES_TOPIC)
    delivery.refresh_from_db()
    return delivery


def deliveries_redeliver_since(
    *, endpoint: WebhookEndpoint, since: datetime, actor: Actor = SYSTEM
) -> int:
    """Deliver again every event `endpoint` was sent since `since` (same webhook-ids); how
    many."""
    if timezone.is_naive(since):
        raise Invalid({"since": "needs a time zone (e.g. 2027-01-31T12:00:00Z)."})
    now = timezone.now()
    with transaction.atomic():
        count = _redeliver(
            Delivery.objects.filter(endpoint=endpoint, event__created_at__gte=since), now=now
        )
        audit_record(
            actor=actor,
            target=endpoint,
            action=AuditAction.DELIVERY_REDELIVERED,
            message=f"{count} since {since.isoformat()}",
        )
        wakeup_notify(DELIVERIES_TOPIC)
    return count


def _redeliver(deliveries: Any, *, now: datetime) -> int:
    return int(
        deliveries.exclude(state=Delivery.State.PENDING, claimed_until__gt=now).update(
            state=Delivery.State.PENDING,
            attempts=0,
            next_attempt_at=now,
            claimed_by="",
            claimed_until=None,
        )
    )


def _apply(*, endpoint: WebhookEndpoint, values: Mapping[str, Any]) -> None:
    unknown = sorted(set(values) - set(WEBHOOK_FIELDS))
    if unknown:
        raise Invalid(dict.fromkeys(unknown, "not a field of a webhook endpoint"))
    for field, value in values.items():
        if field == "mailbox":
            endpoint.mailbox = _referenced(Mailbox, field, value)
        elif field == "client":
            endpoint.client = _referenced(OAuthClient, field, value)
        elif field == "event_types":
            endpoint.event_types = _event_types(value)
        else:
            setattr(endpoint, field, value)


def _event_types(value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise Invalid({"event_types": "a list of event type names (e.g. message.received)."})
    names = list(dict.fromkeys(v.strip() for v in value if v.strip()))
    bad = event_types_valid(names)
    if bad:
        raise Invalid(
            {"event_types": f"no such event type: {', '.join(bad)} (see GET /api/v1/events)."}
        )
    return names


def _referenced(model: type[Mailbox] | type[OAuthClient], field: str, value: Any) -> Any:
    """The object `value` names (an id or a name); None for none; a dangling reference is bad
    input naming the field."""
    if value in (None, ""):
        return None
    what = model._meta.verbose_name
    if isinstance(value, bool):
        raise Invalid({field: f"expected a {what} id or name, not {value!r}"})
    if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
        found = model.objects.filter(pk=int(value)).first() if int(value) < 2**63 else None
    elif isinstance(value, str):
        found = model.objects.filter(name=value).first()
    else:
        raise Invalid({field: f"expected a {what} id or name, not {value!r}"})
    if found is None:
        raise Invalid({field: f"No {what} {value!r}."})
    return found


def _check(*, endpoint: WebhookEndpoint) -> None:
    taken = WebhookEndpoint.objects.filter(name=endpoint.name).exclude(pk=endpoint.pk)
    if endpoint.name and taken.exists():
        raise Conflict(f"A webhook endpoint named {endpoint.name!r} exists already.")
    errors = model_errors(endpoint, exclude=["secret"])
    url_problem = _url_problem(endpoint.url)
    if url_problem:
        errors["url"] = url_problem
    size = endpoint.raw_max_bytes
    if (
        isinstance(size, int)
        and not isinstance(size, bool)
        and not 1 <= size <= RAW_MAX_BYTES_LIMIT
    ):
        errors["raw_max_bytes"] = f"between 1 and {RAW_MAX_BYTES_LIMIT} bytes, not {size}."
    if errors:
        raise Invalid(errors)


def _url_problem(url: Any) -> str:
    if not isinstance(url, str) or not url:
        return "Enter the URL events are POSTed to."
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  # a port out of range raises here
    except ValueError:
        return "Not a URL."
    if parts.scheme not in ("http", "https"):
        return "An http:// or https:// URL."
    if not parts.hostname:
        return "The URL names no host."
    if parts.username or parts.password:
        return "No credentials in the URL: the signature authenticates each delivery."
    return ""
