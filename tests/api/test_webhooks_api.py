"""/api/v1/webhooks: endpoints created, changed, deleted, their secret shown once (at creation
and rotation, never again), a test delivery, the deliveries with their attempts, redelivery."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.db import transaction
from django.utils import timezone
from standardwebhooks import Webhook

from mailgrant.common.events import event_record
from mailgrant.common.models import AuditEvent, Event
from mailgrant.notify.models import Delivery, DeliveryAttempt, WebhookEndpoint

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("webhook_hosts_unresolved")]


BODY = {"name": "app", "url": "https://app.example.test/hooks", "event_types": ["message.*"]}


def created(api: Any, **fields: Any) -> dict[str, Any]:
    response = api.post("/webhooks", {**BODY, **fields})
    assert response.status_code == 201, response.content
    return response.json()  # type: ignore[no-any-return]


def test_the_secret_is_shown_at_creation_and_never_again(api) -> None:
    endpoint = created(api, include_raw=True, raw_max_bytes=5000)
    secret = endpoint["secret"]
    assert secret.startswith("whsec_") and endpoint["has_secret"] is True
    assert endpoint["event_types"] == ["message.*"] and endpoint["raw_max_bytes"] == 5000
    # The secret works with an off-the-shelf verifier.
    body = json.dumps({"type": "webhook.test"})
    hook = Webhook(secret)
    now = timezone.now()
    headers = {
        "webhook-id": "evt_1",
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": hook.sign("evt_1", now, body),
    }
    assert hook.verify(body, headers) == {"type": "webhook.test"}
    stored = WebhookEndpoint.objects.get()
    assert stored.secret is not None and stored.secret.reveal() == secret
    assert secret not in stored.secret.ciphertext

    pk = endpoint["id"]
    with transaction.atomic():
        event = event_record(type="message.sent", data={"n": 1})
    delivery = Delivery.objects.create(endpoint=stored, event=event, attempts=1)
    DeliveryAttempt.objects.create(
        delivery=delivery, at=now, status_code=500, duration_ms=12, response_head="oops"
    )
    answers = [
        api.get("/webhooks"),
        api.get(f"/webhooks/{pk}"),
        api.patch(f"/webhooks/{pk}", {"enabled": False}),
        api.post(f"/webhooks/{pk}/test"),
        api.get(f"/webhooks/{pk}/deliveries"),
        api.post(f"/webhooks/{pk}/redeliver", {"delivery": delivery.pk}),
    ]
    for response in answers:
        assert response.status_code in (200, 201), response.content
        assert secret not in response.content.decode()
        assert "secret" not in json.loads(response.content) if response.json() else True
    assert not AuditEvent.objects.filter(message__contains=secret[6:]).exists()

    rotated = api.post(f"/webhooks/{pk}/rotate-secret")
    assert rotated.status_code == 200
    new = rotated.json()["secret"]
    assert new.startswith("whsec_") and new != secret
    WebhookEndpoint.objects.get().secret.reveal() == new  # noqa: B015
    assert new not in api.get(f"/webhooks/{pk}").content.decode()


def test_crud(api, make_client) -> None:
    client = make_client(name="billing")
    endpoint = created(api, client="billing")
    assert endpoint["client"] == client.pk and endpoint["health"] == "ok"
    pk = endpoint["id"]
    changed = api.patch(f"/webhooks/{pk}", {"url": "http://other.example.test/x", "client": None})
    assert changed.status_code == 200, changed.content
    assert (
        changed.json()["url"] == "http://other.example.test/x" and changed.json()["client"] is None
    )
    disabled = api.patch(f"/webhooks/{pk}", {"enabled": False}).json()
    assert disabled["enabled"] is False and disabled["health"] == "disabled"
    enabled = api.patch(f"/webhooks/{pk}", {"enabled": True}).json()
    assert enabled["health"] == "ok"
    listed = api.get("/webhooks").json()
    assert listed["count"] == 1 and listed["items"][0]["name"] == "app"
    assert api.delete(f"/webhooks/{pk}").status_code == 204
    assert api.get(f"/webhooks/{pk}").status_code == 404
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"webhook.created", "webhook.updated"} <= actions
    assert "webhook.deleted" in actions


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"url": "ftp://app.example.test/"}, "url"),
        ({"url": "not a url"}, "url"),
        ({"url": "https://user:pw@app.example.test/"}, "url"),
        ({"url": "https://app.example.test:99999/"}, "url"),
        ({"event_types": ["message.nope"]}, "event_types"),
        ({"event_types": ["nope.*"]}, "event_types"),
        ({"raw_max_bytes": 0}, "raw_max_bytes"),
        ({"raw_max_bytes": 10**12}, "raw_max_bytes"),
        ({"mailbox": 987654}, "mailbox"),
        ({"client": "no-such-client"}, "client"),
        ({"enabled": "yes"}, "enabled"),
        ({"secret": "whsec_mine"}, "secret"),
        ({"name": ""}, "name"),
    ],
)
def test_bad_input_is_a_clear_400_and_changes_nothing(api, fields, field) -> None:
    response = api.post("/webhooks", {**BODY, **fields})
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == "validation_error" and field in body["message"], body
    assert not WebhookEndpoint.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="webhook").exists()


def test_a_taken_name_is_a_409_and_a_bad_patch_keeps_the_endpoint(api) -> None:
    pk = created(api)["id"]
    taken = api.post("/webhooks", BODY)
    assert taken.status_code == 409 and taken.json()["code"] == "conflict"
    bad = api.patch(f"/webhooks/{pk}", {"url": "gopher://x", "enabled": False})
    assert bad.status_code == 400
    kept = WebhookEndpoint.objects.get()
    assert kept.url == BODY["url"] and kept.enabled is True


def test_a_test_delivery_and_its_log(api) -> None:
    pk = created(api)["id"]
    response = api.post(f"/webhooks/{pk}/test")
    assert response.status_code == 201, response.content
    delivery = response.json()
    assert delivery["event_type"] == "webhook.test" and delivery["state"] == "pending"
    event = Event.objects.get(uid=delivery["event"])
    assert event.dispatched  # for this endpoint alone, never fanned out to the others
    stored = Delivery.objects.get(pk=delivery["id"])
    DeliveryAttempt.objects.create(
        delivery=stored, at=timezone.now(), status_code=503, duration_ms=40, response_head="busy"
    )
    listed = api.get(f"/webhooks/{pk}/deliveries").json()
    assert listed["count"] == 1
    [attempt] = listed["items"][0]["attempt_log"]
    assert attempt["status_code"] == 503 and attempt["response_head"] == "busy"
    assert api.get(f"/webhooks/{pk}/deliveries", data={"state": "delivered"}).json()["count"] == 0
    assert api.get(f"/webhooks/{pk}/deliveries", data={"state": "nope"}).status_code == 400


def test_redeliver_one_or_everything_since(api) -> None:
    pk = created(api)["id"]
    endpoint = WebhookEndpoint.objects.get()
    now = timezone.now()
    deliveries = []
    for age in (3, 2, 1):
        with transaction.atomic():
            event = event_record(type="message.sent", data={}, at=now - timedelta(days=age))
        deliveries.append(
            Delivery.objects.create(
                endpoint=endpoint,
                event=event,
                state=Delivery.State.FAILED,
                attempts=9,
                delivered_at=None,
            )
        )
    one = api.post(f"/webhooks/{pk}/redeliver", {"delivery": deliveries[0].pk})
    assert one.status_code == 200 and one.json() == {"redelivered": 1}
    deliveries[0].refresh_from_db()
    assert deliveries[0].state == "pending" and deliveries[0].attempts == 0
    since = (now - timedelta(days=2, hours=1)).isoformat()
    many = api.post(f"/webhooks/{pk}/redeliver", {"since": since})
    assert many.json() == {"redelivered": 2}
    assert Delivery.objects.filter(state="pending").count() == 3

    for body, field in [
        ({}, "delivery"),
        ({"delivery": deliveries[0].pk, "since": since}, "delivery"),
        ({"since": "2027-01-01T00:00:00"}, "since"),
    ]:
        response = api.post(f"/webhooks/{pk}/redeliver", body)
        assert response.status_code == 400 and field in response.json()["message"], body
    other = api.post(f"/webhooks/{pk}/redeliver", {"delivery": 987654})
    assert other.status_code == 404


def test_reading_needs_read_and_writing_write(api_as) -> None:
    reader = api_as("read")
    assert reader.get("/webhooks").status_code == 200
    assert reader.post("/webhooks", BODY).status_code == 403
    assert not WebhookEndpoint.objects.exists()
