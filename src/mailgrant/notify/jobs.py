"""The webhooks' background work, run by the worker (mailgrant.worker.runtime): the outbox
fanned out to deliveries, and the due deliveries POSTed.

A round claims at most as many due deliveries as the pool has room for, and a worker keeps at
most MAILGRANT_WEBHOOK_IN_FLIGHT in flight per endpoint, so a slow or dead endpoint holds a few
of the pool's slots and never the others' deliveries. Each claim is a
lease renewed by the heartbeat while its POST runs; one that dies with its worker runs out and
the delivery is sent again, with the same webhook-id."""

from __future__ import annotations

import functools
import threading
from collections import Counter
from datetime import datetime, timedelta

from django.conf import settings

from mailgrant.common.claims import claims_release, claims_renew, claims_take
from mailgrant.common.jobs import JobContext
from mailgrant.notify.models import Delivery
from mailgrant.notify.outbound import PostResult
from mailgrant.notify.services.deliveries import delivery_send
from mailgrant.notify.services.dispatch import events_dispatch

# Batches one round fans out at most (each its own transaction) before the others' jobs run.
FAN_OUT_BATCHES = 10

# The deliveries each worker of this process is sending now (delivery -> endpoint), for its
# heartbeat to renew and for the per-endpoint room.
_sending: dict[str, dict[int, int]] = {}
_sending_lock = threading.Lock()


def lease_seconds() -> int:
    return max(5, int(settings.MAILGRANT_WORKER_LEASE))


def events_fan_out(ctx: JobContext) -> int:
    """Undispatched events made into deliveries; how many events."""
    total = 0
    for _ in range(FAN_OUT_BATCHES):
        taken = events_dispatch(now=ctx.now)
        total += taken
        if not taken:
            break
    return total


def deliveries_send_due(ctx: JobContext) -> int:
    """Claim up to `ctx.slots()` due deliveries, oldest due first, and submit each POST."""
    limit = ctx.slots()
    if limit <= 0:
        return 0
    now = ctx.now
    cap = max(1, int(settings.MAILGRANT_WEBHOOK_IN_FLIGHT))
    with _sending_lock:
        in_flight = Counter(_sending.get(ctx.worker, {}).values())
    full = [endpoint for endpoint, n in in_flight.items() if n >= cap]
    due = Delivery.objects.filter(
        state=Delivery.State.PENDING, next_attempt_at__lte=now, endpoint__enabled=True
    )
    if full:
        due = due.exclude(endpoint_id__in=full)
    ids = claims_take(
        due,
        worker=ctx.worker,
        now=now,
        until=now + timedelta(seconds=lease_seconds()),
        limit=limit,
        order_by="next_attempt_at",
    )
    if not ids:
        return 0
    claimed = list(
        Delivery.objects.filter(pk__in=ids)
        .select_related("endpoint", "event")
        .order_by("next_attempt_at", "id")
    )
    taken: list[Delivery] = []
    for delivery in claimed:
        if in_flight[delivery.endpoint_id] < cap:
            in_flight[delivery.endpoint_id] += 1
            taken.append(delivery)
    with _sending_lock:
        _sending.setdefault(ctx.worker, {}).update({d.pk: d.endpoint_id for d in taken})
    # Beyond an endpoint's room (or deleted since the claim): back at once, for a later round.
    claims_release(Delivery, worker=ctx.worker, ids=set(ids) - {d.pk for d in taken})
    for delivery in taken:
        ctx.submit(
            functools.partial(_send, delivery, ctx.worker),
            label=f"delivery {delivery.pk} to webhook {delivery.endpoint_id}",
        )
    return len(taken)


def _send(delivery: Delivery, worker: str) -> PostResult:
    try:
        return delivery_send(delivery=delivery, worker=worker)
    except Exception:
        # The outcome ends the claim; an outcome that could not be written leaves it to us.
        claims_release(Delivery, worker=worker, ids=[delivery.pk])
        raise
    finally:
        _forget(worker, {delivery.pk})


def _forget(worker: str, ids: set[int]) -> None:
    with _sending_lock:
        held = _sending.get(worker)
        if held is not None:
            for pk in ids:
                held.pop(pk, None)
            if not held:
                del _sending[worker]


def deliveries_leases_renew(*, worker: str, now: datetime) -> int:
    """Renew `worker`'s claims on the deliveries it is sending (its heartbeat calls this)."""
    with _sending_lock:
        ids = list(_sending.get(worker, ()))
    return claims_renew(
        Delivery, worker=worker, ids=ids, until=now + timedelta(seconds=lease_seconds())
    )
