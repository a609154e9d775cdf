"""Webhook endpoints: created (the signing secret returned once), updated, deleted, their
secret rotated, and a test delivery asked for."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from mailgrant.common.audit import Actor, AuditAction, audit_record
from mailgrant.common.errors import Conflict, Invalid
from mailgrant.common.events import event_build, event_types_valid, events_record
from mailgrant.common.health import Health
from mailgrant.common.validation import model_errors
from mailgrant.common.wakeup import wakeup_notify
from mailgrant.mailboxes.models import Mailbox
from mailgrant.notify.health import REASON_DISABLED
from mailgrant.notify.models import Delivery, WebhookEndpoint
from mailgrant.notify.outbound import destination_problem
from mailgrant.notify.signing import secret_generate
from mailgrant.oauth.models import OAuthClient

WAKEUP_TOPIC = "webhooks"
RAW_MAX_BYTES_LIMIT = 25 * 1024 * 1024
EDITABLE = (
    "name",
    "url",
    "enabled",
    "event_types",
    "mailbox",
    "client",
    "include_raw",
    "raw_max_bytes",
)


def webhook_endpoint_create(
    *, values: Mapping[str, Any], actor: Actor
) -> tuple[WebhookEndpoint, str]:
    """A new endpoint from `values` (name and url required; see EDITABLE) and its signing
    secret, which is never shown again."""
    endpoint = WebhookEndpoint()
    _name_free(values, endpoint)
    _apply(endpoint, values, required=("name", "url"))
    secret = secret_generate()
    endpoint.secret = secret
    with transaction.atomic():
        endpoint.save()
        audit_record(actor=actor, action=AuditAction.WEBHOOK_CREATED, target=endpoint)
    _seal(endpoint)
    return endpoint, secret


def webhook_endpoint_update(
    *, endpoint: WebhookEndpoint, values: Mapping[str, Any], actor: Actor
) -> WebhookEndpoint:
    """`endpoint` with `values` changed (the fields not given stay). Enabling it again is a
    fresh start: ok, its disable reason and failure streak forgotten."""
    was_enabled = endpoint.enabled
    _name_free(values, endpoint)
    _apply(endpoint, values, required=())
    now = timezone.now()
    if endpoint.enabled and not was_enabled:
        endpoint.disabled_reason = ""
        endpoint.failing_since = None
        endpoint.health_succeeded(now=now)
    elif was_enabled and not endpoint.enabled:
        endpoint.disabled_reason = "Disabled by a person."
        endpoint.health_set(
            health=Health.DISABLED, reason=REASON_DISABLED.code, hint=REASON_DISABLED.hint, now=now
        )
    with transaction.atomic():
        endpoint.save()
        audit_record(actor=actor, action=AuditAction.WEBHOOK_UPDATED, target=endpoint)
        if endpoint.enabled and not was_enabled:
            wakeup_notify(WAKEUP_TOPIC)  # its held deliveries are due
    return endpoint


def webhook_endpoint_delete(*, endpoint: WebhookEndpoint, actor: Actor) -> None:
    """Delete `endpoint` with its deliveries and their attempts (the events stay)."""
    with transaction.atomic():
        audit_record(actor=actor, action=AuditAction.WEBHOOK_DELETED, target=endpoint)
        endpoint.delete()


def webhook_endpoint_rotate_secret(
    *, endpoint: WebhookEndpoint, actor: Actor
) -> tuple[WebhookEndpoint, str]:
    """A new signing secret for `endpoint` (returned once); every attempt from now on, retries
    included, is signed with it."""
    secret = secret_generate()
    with transaction.atomic():
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(secret=secret)
        audit_record(actor=actor, action=AuditAction.WEBHOOK_SECRET_ROTATED, target=endpoint)
    _seal(endpoint)
    return endpoint, secret


def webhook_endpoint_test(*, endpoint: WebhookEndpoint, actor: Actor) -> Delivery:
    """A `webhook.test` event delivered to `endpoint` alone (it is never fanned out)."""
    now = timezone.now()
    event = event_build(
        type="webhook.test",
        subject=endpoint,
        data={
            "endpoint": {"id": endpoint.pk, "name": endpoint.name},
            "message": "A test delivery from mailgrant.",
            "requested_by": actor.name,
        },
        at=now,
    )
    event.dispatched = True  # targeted: the fan-out never sends it to the other endpoints
    with transaction.atomic():
        [event] = events_record([event])
        delivery = Delivery.objects.create(endpoint=endpoint, event=event, next_attempt_at=now)
        audit_record(actor=actor, action=AuditAction.WEBHOOK_TESTED, target=endpoint)
        wakeup_notify(WAKEUP_TOPIC)
    return delivery


def webhook_endpoint_errors(
    *, endpoint: WebhookEndpoint | None, values: Mapping[str, Any]
) -> dict[str, str]:
    """What `values` would be refused for, by field, touching nothing: for a form to show
    beside its fields before it saves (an endpoint to change, or None for a new one)."""
    candidate = copy.copy(endpoint) if endpoint is not None else WebhookEndpoint()
    try:
        _apply(candidate, values, required=() if endpoint is not None else ("name", "url"))
    except Invalid as exc:
        return dict(exc.fields or {})
    return {}


def _name_free(values: Mapping[str, Any], endpoint: WebhookEndpoint) -> None:
    name = str(values.get("name") or "").strip()
    if name and WebhookEndpoint.objects.filter(name=name).exclude(pk=endpoint.pk).exists():
        raise Conflict(f"A webhook endpoint named {name!r} exists already.")


def _seal(endpoint: WebhookEndpoint) -> None:
    """The instance holds the stored ciphertext again, never the plaintext it was saved with."""
    endpoint.secret = (
        WebhookEndpoint.objects.filter(pk=endpoint.pk).values_list("secret", flat=True).get()
    )


def _apply(
    endpoint: WebhookEndpoint, values: Mapping[str, Any], *, required: tuple[str, ...]
) -> None:
    """Set `values` on `endpoint`, or Invalid naming every field at fault (nothing saved)."""
    errors: dict[str, str] = {}
    unknown = sorted(set(values) - set(EDITABLE))
    for name in unknown:
        errors[name] = f"Not a webhook endpoint field (fields: {', '.join(EDITABLE)})."
    for name in required:
        if not str(values.get(name) or "").strip():
            errors[name] = "Required."
    if "name" in values:
        endpoint.name = str(values["name"] or "").strip()
    if "url" in values:
        endpoint.url = str(values["url"] or "").strip()
    for flag in ("enabled", "include_raw"):
        if flag in values:
            if not isinstance(values[flag], bool):
                errors[flag] = "true or false."
            else:
                setattr(endpoint, flag, values[flag])
    if "event_types" in values:
        types = values["event_types"]
        if isinstance(types, str):
            types = [t.strip() for t in types.split(",") if t.strip()]
        if not isinstance(types, list | tuple) or not all(isinstance(t, str) for t in types):
            errors["event_types"] = "A list of event types (e.g. message.received, grant.*)."
        elif bad := event_types_valid(types):
            errors["event_types"] = f"Unknown event type(s): {', '.join(bad)}."
        else:
            endpoint.event_types = sorted(set(types))
    if "raw_max_bytes" in values:
        size = values["raw_max_bytes"]
        if isinstance(size, bool) or not isinstance(size, int):
            errors["raw_max_bytes"] = "A whole number of bytes."
        elif not 1 <= size <= RAW_MAX_BYTES_LIMIT:
            errors["raw_max_bytes"] = f"Between 1 and {RAW_MAX_BYTES_LIMIT} bytes."
        else:
            endpoint.raw_max_bytes = size
    if "mailbox" in values:
        try:
            endpoint.mailbox = _lookup(Mailbox, values["mailbox"])
        except LookupError as exc:
            errors["mailbox"] = str(exc)
    if "client" in values:
        try:
            endpoint.client = _lookup(OAuthClient, values["client"])
        except LookupError as exc:
            errors["client"] = str(exc)
    if "url" not in errors and endpoint.url:
        problem = destination_problem(
            endpoint.url, allow_private=bool(settings.MAILGRANT_WEBHOOK_ALLOW_PRIVATE)
        )
        if problem:
            errors["url"] = problem
    for name, problem in model_errors(endpoint, exclude=["secret", *errors]).items():
        errors.setdefault(name, problem)
    if errors:
        raise Invalid(errors)


def _lookup(model: type[Mailbox] | type[OAuthClient], ref: Any) -> Any:
    """What `ref` names: an instance, an id or a name; None clears the filter."""
    if ref is None or ref == "":
        return None
    if isinstance(ref, model):
        return ref
    what = model._meta.verbose_name
    if isinstance(ref, int) and not isinstance(ref, bool):
        found = model._default_manager.filter(pk=ref).first()
    elif isinstance(ref, str):
        named = Q(name=ref.strip())
        if ref.strip().isdigit():
            named |= Q(pk=int(ref))
        found = model._default_manager.filter(named).first()
    else:
        raise LookupError(f"A {what} id or name.")
    if found is None:
        raise LookupError(f"No {what} {ref!r}.")
    return found
