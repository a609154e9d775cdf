"""Deliveries: one signed POST of a claimed delivery and its outcome (delivered, retried with
backoff, given up, the endpoint disabled by a 410), and redelivery asked for by a person.

Every attempt carries the event's id as `webhook-id`, so a receiver de-duplicates retries and
redeliveries by it; the timestamp and signature are the attempt's own."""

from __future__ import annotations

import base64
import json
import random
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from mailgrant.common.audit import WORKER, Actor, AuditAction, audit_record
from mailgrant.common.events import event_body
from mailgrant.common.health import Health
from mailgrant.common.metrics import WEBHOOK_ATTEMPT_SECONDS, WEBHOOK_ATTEMPTS
from mailgrant.common.models import Event
from mailgrant.common.wakeup import wakeup_notify
from mailgrant.mailboxes.selectors import message_raw
from mailgrant.notify.health import FAILING_AFTER_SECONDS, REASON_FAILING, REASON_GONE
from mailgrant.notify.models import Delivery, DeliveryAttempt, WebhookEndpoint
from mailgrant.notify.outbound import HEAD_CAP, PostResult, webhook_post
from mailgrant.notify.services.dispatch import endpoint_wants
from mailgrant.notify.services.endpoints import WAKEUP_TOPIC
from mailgrant.notify.signing import signed_headers

# Seconds before each retry (Standard Webhooks' / Svix's schedule, stretched to about three
# days); after the last, the delivery is given up.
RETRY_SCHEDULE = (5, 300, 1800, 7200, 18000, 36000, 36000, 50400, 50400, 50400)
RETRY_AFTER_CAP = 24 * 3600
# last_success_at is written at most this often while all is well (not on every delivery).
SUCCESS_MARK_EVERY = timedelta(seconds=60)


def retry_delay(attempts: int, *, rng: random.Random | None = None) -> float | None:
    """Seconds before the next attempt after `attempts` failed ones, with +-20 % jitter so
    that one outage's retries do not all come back in the same second; None: give up."""
    if attempts > len(RETRY_SCHEDULE):
        return None
    step = RETRY_SCHEDULE[attempts - 1]
    return step * (rng or random).uniform(0.8, 1.2)  # type: ignore[attr-defined]


def retry_after_seconds(value: str, *, now: datetime) -> float | None:
    """A Retry-After header (seconds, or an HTTP date) as seconds from `now`, capped."""
    value = value.strip()
    if not value:
        return None
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        seconds = (when - now).total_seconds()
    return min(max(seconds, 1.0), float(RETRY_AFTER_CAP))


def delivery_payload(delivery: Delivery) -> bytes:
    """The body of `delivery` as POSTed: the event's payload, and for message.received the raw
    message inline (base64) when its endpoint asks for it and it fits."""
    event: Event = delivery.event
    endpoint: WebhookEndpoint = delivery.endpoint
    body = event_body(event)
    message = body["data"].get("message")
    if event.type == "message.received" and endpoint.include_raw and isinstance(message, dict):
        size = message.get("size")
        if isinstance(message.get("id"), int) and (size or 0) <= endpoint.raw_max_bytes:
            raw = message_raw(message_id=message["id"], max_bytes=endpoint.raw_max_bytes)
            if raw is not None:
                body["data"]["message"] = {**message, "raw": base64.b64encode(raw).decode()}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def delivery_send(*, delivery: Delivery, worker: str) -> PostResult:
    """POST `delivery` (claimed by `worker`, loaded with its endpoint and event) once and
    record the outcome; its claim ends whatever happens."""
    endpoint = delivery.endpoint
    try:
        body = delivery_payload(delivery)
        secret = endpoint.secret.reveal() if endpoint.secret else ""
        headers = signed_headers(
            secret=secret, msg_id=delivery.event.uid, at=timezone.now(), body=body
        )
        result = webhook_post(
            endpoint.url,
            body=body,
            headers=headers,
            timeout=float(settings.MAILGRANT_WEBHOOK_TIMEOUT),
            allow_private=bool(settings.MAILGRANT_WEBHOOK_ALLOW_PRIVATE),
        )
    except Exception as exc:  # a body or secret that cannot be made: retried like a failure
        result = PostResult(status=None, duration=0.0, error=f"unexpected: {type(exc).__name__}")
    delivery_outcome_record(delivery=delivery, result=result, worker=worker)
    return result


def delivery_outcome_record(*, delivery: Delivery, result: PostResult, worker: str) -> str:
    """Write what one attempt got: its DeliveryAttempt row, the delivery's new state and the
    endpoint's health, in one transaction; the outcome (delivered, retry, failed, gone)."""
    now = timezone.now()
    endpoint = delivery.endpoint
    attempts = delivery.attempts + 1
    changes: dict[str, Any] = {
        "attempts": attempts,
        "last_status": result.status,
        "last_error": result.error,
        "claimed_by": "",
        "claimed_until": None,
    }
    if result.ok:
        outcome = "delivered"
        changes.update(state=Delivery.State.DELIVERED, delivered_at=now, next_attempt_at=None)
    elif result.status == 410:
        outcome = "gone"
        changes.update(state=Delivery.State.FAILED, next_attempt_at=None)
    else:
        delay = None
        if result.status == 429:
            delay = retry_after_seconds(result.retry_after, now=now)
        if delay is None:
            delay = retry_delay(attempts)
        if delay is None or attempts > len(RETRY_SCHEDULE):
            outcome = "failed"
            changes.update(state=Delivery.State.FAILED, next_attempt_at=None)
        else:
            outcome = "retry"
            changes.update(next_attempt_at=now + timedelta(seconds=delay))
    with transaction.atomic():
        # The endpoint's row before the delivery's, the order a 410's cancel takes them in.
        if outcome == "delivered":
            _endpoint_succeeded(endpoint, now=now)
        elif outcome == "gone":
            _endpoint_gone(endpoint, now=now, sent=delivery.pk)
        else:
            _endpoint_failed(endpoint, now=now)
        DeliveryAttempt.objects.create(
            delivery_id=delivery.pk,
            at=now,
            status_code=result.status,
            duration_ms=round(result.duration * 1000),
            response_head=result.head[:HEAD_CAP].decode("utf-8", "replace"),
            error=result.error,
        )
        # A claim lost meanwhile (its lease ran out, another worker took the delivery): that
        # worker records the state; this attempt is still counted and logged.
        updated = Delivery.objects.filter(pk=delivery.pk, claimed_by=worker).update(**changes)
        if not updated:
            Delivery.objects.filter(pk=delivery.pk).update(
                attempts=attempts, last_status=result.status, last_error=result.error
            )
    WEBHOOK_ATTEMPTS.labels(outcome).inc()
    WEBHOOK_ATTEMPT_SECONDS.labels(outcome).observe(result.duration)
    return outcome


def _endpoint_succeeded(endpoint: WebhookEndpoint, *, now: datetime) -> None:
    if endpoint.failing_since is None and endpoint.health == Health.OK:
        marked = endpoint.last_success_at
        if marked is not None and now - marked < SUCCESS_MARK_EVERY:
            return
        WebhookEndpoint.objects.filter(pk=endpoint.pk).exclude(
            last_success_at__gt=now - SUCCESS_MARK_EVERY
        ).update(last_success_at=now)
        return
    fresh = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
    fresh.failing_since = None
    fresh.last_success_at = now
    changed = ["failing_since", "last_success_at"]
    if fresh.health in (Health.FAILING, Health.OK):
        changed += fresh.health_succeeded(now=now)
    fresh.save(update_fields=changed)  # failing -> ok writes webhook.recovered


def _endpoint_failed(endpoint: WebhookEndpoint, *, now: datetime) -> None:
    if endpoint.failing_since is None:
        WebhookEndpoint.objects.filter(pk=endpoint.pk, failing_since__isnull=True).update(
            failing_since=now
        )
        return
    if endpoint.health != Health.OK:
        return
    if (now - endpoint.failing_since).total_seconds() < FAILING_AFTER_SECONDS:
        return
    fresh = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
    if fresh.health != Health.OK or fresh.failing_since is None:
        return
    changed = fresh.health_failed(reason=REASON_FAILING, now=now)
    fresh.save(update_fields=changed)  # ok -> failing writes webhook.failing


def _endpoint_gone(endpoint: WebhookEndpoint, *, now: datetime, sent: int) -> None:
    """410 Gone: the endpoint disabled, its pending deliveries but `sent` cancelled."""
    fresh = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
    if not fresh.enabled:
        return
    fresh.enabled = False
    fresh.disabled_reason = f"It answered 410 Gone on {now:%Y-%m-%d %H:%M:%S} UTC."
    changed = fresh.health_set(
        health=Health.DISABLED, reason=REASON_GONE.code, hint=REASON_GONE.hint, now=now
    )
    fresh.save(update_fields=["enabled", "disabled_reason", *changed])
    pending = Delivery.objects.filter(endpoint_id=fresh.pk, state=Delivery.State.PENDING)
    pending.exclude(pk=sent).update(
        state=Delivery.State.CANCELLED, next_attempt_at=None, claimed_by="", claimed_until=None
    )
    audit_record(
        actor=WORKER,
        action=AuditAction.WEBHOOK_DISABLED,
        target=fresh,
        message="410 Gone: disabled, pending deliveries cancelled",
    )


def delivery_redeliver(*, delivery: Delivery, actor: Actor) -> Delivery:
    """Send `delivery` again (the same webhook-id), due now, its retry schedule from the
    start."""
    now = timezone.now()
    with transaction.atomic():
        Delivery.objects.filter(pk=delivery.pk).update(**_fresh_start(now))
        audit_record(
            actor=actor,
            action=AuditAction.WEBHOOK_REDELIVERED,
            target=delivery.endpoint,
            message=f"event {delivery.event.uid}",
        )
        wakeup_notify(WAKEUP_TOPIC)
    delivery.refresh_from_db()
    return delivery


def deliveries_redeliver_since(*, endpoint: WebhookEndpoint, since: datetime, actor: Actor) -> int:
    """Send `endpoint` every event since `since` that it subscribes to again (the same
    webhook-ids), those it never had too (while it was disabled, say); how many."""
    now = timezone.now()
    with transaction.atomic():
        events = Event.objects.filter(created_at__gte=since, dispatched=True).only(
            "id", "type", "mailbox_ref", "client_ref"
        )
        missing = [
            Delivery(endpoint_id=endpoint.pk, event_id=event.pk, next_attempt_at=now)
            for event in events.iterator(chunk_size=2000)
            if endpoint_wants(endpoint, event)
        ]
        Delivery.objects.bulk_create(missing, ignore_conflicts=True, batch_size=1000)
        count = Delivery.objects.filter(endpoint=endpoint, event__created_at__gte=since).update(
            **_fresh_start(now)
        )
        audit_record(
            actor=actor,
            action=AuditAction.WEBHOOK_REDELIVERED,
            target=endpoint,
            message=f"{count} deliveries since {since.isoformat()}",
        )
        wakeup_notify(WAKEUP_TOPIC)
    return count


def _fresh_start(now: datetime) -> dict[str, Any]:
    return {"state": Delivery.State.PENDING, "attempts": 0, "next_attempt_at": now}
