"""The admin of webhook endpoints, deliveries and events: the signing secret on the page that
answers the add (or a rotation) and on no other page, nor in a cookie or the session on the way;
deliveries read-only with their attempts and Redeliver; events read-only with their body."""

from __future__ import annotations

import pytest
from django.contrib.sessions.models import Session
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from mailgrant.common.events import event_record
from mailgrant.notify.models import Delivery, DeliveryAttempt, WebhookEndpoint

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("webhook_hosts_unresolved")]


FORM = {
    "name": "app",
    "url": "https://app.example.test/hooks",
    "enabled": "on",
    "event_types": "message.received, grant.*",
    "raw_max_bytes": "1000",
}


def pages(admin_client, endpoint: WebhookEndpoint, delivery: Delivery) -> list[str]:
    urls = [
        reverse("admin:notify_webhookendpoint_changelist"),
        reverse("admin:notify_webhookendpoint_change", args=[endpoint.pk]),
        reverse("admin:notify_delivery_changelist"),
        reverse("admin:notify_delivery_change", args=[delivery.pk]),
        reverse("admin:common_event_changelist"),
        reverse("admin:common_event_change", args=[delivery.event_id]),
    ]
    answers = [admin_client.get(url) for url in urls]
    for url, response in zip(urls, answers, strict=True):
        assert response.status_code == 200, url
    return [r.content.decode() for r in answers]


def secret_anywhere(admin_client, secret: str) -> bool:
    stored = "".join(s.session_data for s in Session.objects.all())
    cookies = "".join(c.value for c in admin_client.cookies.values())
    return secret in stored or secret in cookies


def test_the_secret_is_shown_once_after_add_and_on_no_page_after(admin_client) -> None:
    response = admin_client.post(reverse("admin:notify_webhookendpoint_add"), FORM)
    assert response.status_code == 200, response.content
    endpoint = WebhookEndpoint.objects.get()
    secret = endpoint.secret.reveal()
    html = response.content.decode()
    assert secret in html and "not shown again" in html and "Added the webhook" in html
    assert "no-store" in response["Cache-Control"]
    assert endpoint.event_types == ["grant.*", "message.received"]
    assert not secret_anywhere(admin_client, secret)

    with transaction.atomic():
        event = event_record(type="message.received", data={"message": {"id": 1}})
    delivery = Delivery.objects.create(endpoint=endpoint, event=event, attempts=1)
    DeliveryAttempt.objects.create(
        delivery=delivery, at=timezone.now(), status_code=502, response_head="bad gateway"
    )
    for page in pages(admin_client, endpoint, delivery):
        assert secret not in page
    edit = reverse("admin:notify_webhookendpoint_change", args=[endpoint.pk])
    changed = admin_client.post(edit, {**FORM, "url": "https://other.example.test/"})
    assert changed.status_code == 302
    endpoint.refresh_from_db()
    assert endpoint.url == "https://other.example.test/" and endpoint.secret.reveal() == secret

    rotated = admin_client.post(
        reverse("admin:notify_webhookendpoint_changelist"),
        {"action": "rotate_secret", "_selected_action": [endpoint.pk]},
    )
    endpoint.refresh_from_db()
    new = endpoint.secret.reveal()
    assert new != secret and new in rotated.content.decode()
    assert not secret_anywhere(admin_client, new)
    for page in pages(admin_client, endpoint, delivery):
        assert new not in page


@pytest.mark.parametrize(
    ("field", "value"),
    [("url", "ftp://x.example.test/"), ("event_types", "message.nope"), ("raw_max_bytes", "-1")],
)
def test_bad_input_is_a_form_error(admin_client, field, value) -> None:
    response = admin_client.post(
        reverse("admin:notify_webhookendpoint_add"), {**FORM, field: value}
    )
    assert response.status_code == 200
    assert response.context["adminform"].form.errors.get(field), response.context[
        "adminform"
    ].form.errors
    assert not WebhookEndpoint.objects.exists()


def test_deliveries_are_read_only_with_attempts_and_redeliver(admin_client) -> None:
    endpoint = WebhookEndpoint.objects.create(name="app", url="https://app.example.test/")
    with transaction.atomic():
        event = event_record(type="message.sent", data={"subject": "hello"})
    delivery = Delivery.objects.create(
        endpoint=endpoint, event=event, state=Delivery.State.FAILED, attempts=9
    )
    DeliveryAttempt.objects.create(
        delivery=delivery, at=timezone.now(), status_code=500, response_head="boom-head"
    )
    page = admin_client.get(reverse("admin:notify_delivery_change", args=[delivery.pk]))
    html = page.content.decode()
    assert "boom-head" in html and event.uid in html
    assert 'name="_save"' not in html  # read-only
    assert admin_client.get(reverse("admin:notify_delivery_add")).status_code == 403

    admin_client.post(
        reverse("admin:notify_delivery_changelist"),
        {"action": "redeliver", "_selected_action": [delivery.pk]},
    )
    delivery.refresh_from_db()
    assert delivery.state == "pending" and delivery.attempts == 0

    body = admin_client.get(reverse("admin:common_event_change", args=[event.pk])).content
    assert b"&quot;subject&quot;: &quot;hello&quot;" in body and event.uid.encode() in body
    listed = admin_client.get(reverse("admin:common_event_changelist"), {"type": "message.sent"})
    assert event.uid in listed.content.decode()


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("https://nowhere.invalid/hooks", "does not resolve"),
        ("http://127.0.0.1:9/hooks", "MAILGRANT_WEBHOOK_ALLOW_PRIVATE"),
    ],
)
def test_a_url_the_address_rule_refuses_is_a_form_error(admin_client, settings, url, words):
    settings.MAILGRANT_WEBHOOK_ALLOW_PRIVATE = False
    response = admin_client.post(reverse("admin:notify_webhookendpoint_add"), {**FORM, "url": url})
    assert response.status_code == 200
    assert words in response.content.decode()
    assert not WebhookEndpoint.objects.exists()
