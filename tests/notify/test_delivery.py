"""Webhook deliveries to real receivers on loopback sockets, verified with the `standardwebhooks`
library: retries with one webhook-id, Retry-After, 410, redirects, timeouts, a 1 GB answer, the
private-address rule at save and at connect, the fan-out's filters and the outbox's rollback,
health after a day of failures, redelivery, and the secret shown once."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
from django.db import transaction
from django.utils import timezone

from mailgrant.common.audit import CLI
from mailgrant.common.errors import Invalid
from mailgrant.common.events import event_build, event_record, events_record
from mailgrant.common.jobs import InlineContext
from mailgrant.common.models import AuditEvent, Event
from mailgrant.notify.jobs import deliveries_send_due, events_fan_out
from mailgrant.notify.models import Delivery, DeliveryAttempt, WebhookEndpoint
from mailgrant.notify.outbound import address_allowed, destination_problem
from mailgrant.notify.services.deliveries import (
    RETRY_SCHEDULE,
    deliveries_redeliver_since,
    delivery_redeliver,
    retry_after_seconds,
    retry_delay,
)
from mailgrant.notify.services.endpoints import (
    webhook_endpoint_create,
    webhook_endpoint_rotate_secret,
    webhook_endpoint_test,
    webhook_endpoint_update,
)
from mailgrant.worker.runtime import WorkerRuntime
from tests.notify.receiver import (
    Receiver,
    answer,
    endless,
    fail_first,
    hang,
)
from tests.waiting import wait_until
from tests.worker import world

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def receiver() -> Any:
    with Receiver() as running:
        yield running


@pytest.fixture(autouse=True)
def _loopback_allowed(settings: Any) -> None:
    settings.MAILGRANT_WEBHOOK_ALLOW_PRIVATE = True  # the receivers are on 127.0.0.1


def endpoint_at(receiver: Receiver, path: str, **values: Any) -> WebhookEndpoint:
    endpoint, secret = webhook_endpoint_create(
        values={"name": path.strip("/") or "root", "url": receiver.url(path), **values},
        actor=CLI,
    )
    receiver.secrets[path] = secret
    return endpoint


def emit(type: str = "grant.authorized", **refs: Any) -> Event:
    with transaction.atomic():
        return event_record(type=type, data={"note": "test"}, **refs)


def round_(now: Any = None) -> list[Any]:
    ctx = InlineContext(worker="test-worker", now=now or timezone.now())
    events_fan_out(ctx)
    deliveries_send_due(ctx)
    return ctx.results


def time_passes() -> None:
    """Every pending delivery due now: the backoff is not waited out in a test."""
    Delivery.objects.filter(state=Delivery.State.PENDING).update(next_attempt_at=timezone.now())


def test_three_500s_then_200_is_delivered_with_one_id_and_four_attempts(receiver) -> None:
    receiver.behaviours["/flaky"] = fail_first(3)
    endpoint_at(receiver, "/flaky")
    event = emit()
    round_()
    delivery = Delivery.objects.get()
    assert delivery.state == "pending" and delivery.attempts == 1 and delivery.last_status == 500
    first_wait = (delivery.next_attempt_at - delivery.attempt_log.get().at).total_seconds()
    assert RETRY_SCHEDULE[0] * 0.8 <= first_wait <= RETRY_SCHEDULE[0] * 1.2
    assert round_() == []  # not due yet
    for _ in range(3):
        time_passes()
        round_()
    delivery.refresh_from_db()
    assert delivery.state == "delivered" and delivery.attempts == 4
    assert not receiver.rejected
    got = receiver.at("/flaky")
    assert [r.id for r in got] == [event.uid] * 4
    assert all(r.payload["id"] == event.uid and r.payload["type"] for r in got)
    assert got[0].headers["user-agent"].startswith("mailgrant/")
    attempts = list(DeliveryAttempt.objects.filter(delivery=delivery).order_by("id"))
    assert [a.status_code for a in attempts] == [500, 500, 500, 200]
    assert attempts[0].response_head == "nope" and attempts[-1].response_head == "ok"
    time_passes()
    assert round_() == []  # delivered is done


def test_the_retry_schedule_lasts_about_three_days_and_then_gives_up() -> None:
    total = sum(RETRY_SCHEDULE)
    assert 2.5 * 86400 <= total <= 3.5 * 86400
    assert retry_delay(len(RETRY_SCHEDULE) + 1) is None
    delays = {round(retry_delay(2) or 0) for _ in range(50)}
    assert len(delays) > 1  # jittered


def test_the_last_failure_gives_the_delivery_up(receiver) -> None:
    receiver.behaviours["/down"] = answer(503)
    endpoint_at(receiver, "/down")
    emit()
    for _ in range(len(RETRY_SCHEDULE) + 1):
        time_passes()
        round_()
    delivery = Delivery.objects.get()
    assert delivery.state == "failed" and delivery.attempts == len(RETRY_SCHEDULE) + 1
    time_passes()
    assert round_() == []


def test_429_honours_retry_after_in_seconds_and_as_a_date(receiver) -> None:
    receiver.behaviours["/busy"] = answer(429, headers={"Retry-After": "120"})
    endpoint_at(receiver, "/busy")
    emit()
    round_()
    delivery = Delivery.objects.get()
    wait = (delivery.next_attempt_at - delivery.attempt_log.get().at).total_seconds()
    assert 119 <= wait <= 121
    now = timezone.now()
    date = format_datetime((now + timedelta(seconds=600)).astimezone(UTC), usegmt=True)
    assert 598 <= (retry_after_seconds(date, now=now) or 0) <= 601
    assert retry_after_seconds("99999999", now=now) == 24 * 3600  # capped
    assert retry_after_seconds("soon", now=now) is None


def test_410_disables_the_endpoint_and_cancels_its_pending_deliveries(receiver) -> None:
    receiver.behaviours["/gone"] = answer(410)
    endpoint = endpoint_at(receiver, "/gone")
    for _ in range(3):
        emit()
    ctx = InlineContext(worker="w", now=timezone.now(), capacity=1)
    events_fan_out(ctx)
    deliveries_send_due(ctx)  # one delivery sent; the other two wait
    endpoint.refresh_from_db()
    assert not endpoint.enabled and "410" in endpoint.disabled_reason
    assert endpoint.health == "disabled" and endpoint.health_reason == "webhook.gone"
    states = sorted(Delivery.objects.values_list("state", flat=True))
    assert states == ["cancelled", "cancelled", "failed"]
    assert AuditEvent.objects.filter(action="webhook.disabled").count() == 1
    emit()
    time_passes()
    round_()
    assert len(receiver.at("/gone")) == 1  # nothing more goes to a disabled endpoint


def test_a_redirect_is_not_followed_and_names_its_location(receiver) -> None:
    elsewhere = receiver.url("/elsewhere")
    receiver.behaviours["/moved"] = answer(302, headers={"Location": elsewhere})
    endpoint_at(receiver, "/moved")
    emit()
    round_()
    attempt = DeliveryAttempt.objects.get()
    assert attempt.status_code == 302 and elsewhere in attempt.error
    assert Delivery.objects.get().state == "pending"
    assert receiver.at("/elsewhere") == []


def test_an_endpoint_that_never_answers_times_out(receiver, settings) -> None:
    settings.MAILGRANT_WEBHOOK_TIMEOUT = 0.5
    release = threading.Event()
    receiver.behaviours["/silent"] = hang(release)
    endpoint_at(receiver, "/silent")
    emit()
    try:
        round_()
    finally:
        release.set()
    attempt = DeliveryAttempt.objects.get()
    assert attempt.status_code is None and attempt.error.startswith("timeout")
    assert Delivery.objects.get().state == "pending"


def test_a_1_gb_answer_is_read_only_up_to_the_cap(receiver) -> None:
    sent: list[int] = []
    receiver.behaviours["/huge"] = endless(sent)
    endpoint_at(receiver, "/huge")
    emit()
    round_()
    attempt = DeliveryAttempt.objects.get()
    assert attempt.status_code == 200 and len(attempt.response_head) <= 1024
    assert Delivery.objects.get().state == "delivered"
    wait_until("the server to notice the client left", lambda: sent)
    assert sent[0] < 64 * 1024 * 1024  # the client stopped reading far short of 1 GB


def test_a_private_address_is_refused_at_save_and_at_connect(receiver, settings) -> None:
    settings.MAILGRANT_WEBHOOK_ALLOW_PRIVATE = False
    with pytest.raises(Invalid) as refused:
        webhook_endpoint_create(values={"name": "inside", "url": receiver.url("/in")}, actor=CLI)
    assert "url" in refused.value.fields and "MAILGRANT_WEBHOOK_ALLOW_PRIVATE" in str(
        refused.value.fields["url"]
    )
    with pytest.raises(Invalid) as named:
        webhook_endpoint_create(
            values={"name": "named", "url": f"http://localhost:{receiver.port}/in"}, actor=CLI
        )
    assert "127.0.0.1" in named.value.fields["url"] or "::1" in named.value.fields["url"]
    assert not WebhookEndpoint.objects.exists()

    # Saved while allowed (or resolving elsewhere then): the connect itself refuses.
    settings.MAILGRANT_WEBHOOK_ALLOW_PRIVATE = True
    endpoint_at(receiver, "/in")
    settings.MAILGRANT_WEBHOOK_ALLOW_PRIVATE = False
    emit()
    round_()
    attempt = DeliveryAttempt.objects.get()
    assert attempt.status_code is None and attempt.error.startswith("refused")
    assert receiver.at("/in") == []

    # A name is resolved at connect time and the address it gives checked (no rebinding).
    settings.MAILGRANT_WEBHOOK_ALLOW_PRIVATE = True
    webhook_endpoint_update(
        endpoint=WebhookEndpoint.objects.get(),
        values={"url": f"http://localhost:{receiver.port}/in"},
        actor=CLI,
    )
    settings.MAILGRANT_WEBHOOK_ALLOW_PRIVATE = False
    time_passes()
    round_()
    latest = DeliveryAttempt.objects.order_by("-id").first()
    assert latest is not None and latest.error.startswith("refused") and "localhost" in latest.error
    assert receiver.at("/in") == []


def test_a_url_with_credentials_or_another_scheme_is_refused() -> None:
    assert "user name" in destination_problem("https://u:p@example.test/", allow_private=True)
    assert "https://" in destination_problem("ftp://example.test/", allow_private=True)
    assert destination_problem("https://example.test/hook", allow_private=True) == ""


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("8.8.8.8", True),
        ("2001:4860:4860::8888", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("192.168.0.1", False),
        ("172.16.0.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("0.0.0.0", False),
        ("::1", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("::ffff:127.0.0.1", False),
        ("224.0.0.1", False),
    ],
)
def test_the_address_rule(address: str, allowed: bool) -> None:
    assert address_allowed(address, allow_private=False) is allowed
    assert address_allowed(address, allow_private=True)


def test_bad_input_gets_field_errors_and_saves_nothing(receiver) -> None:
    with pytest.raises(Invalid) as bad:
        webhook_endpoint_create(
            values={
                "name": "",
                "url": "ftp://example.test/x",
                "event_types": ["message.recieved"],
                "raw_max_bytes": 0,
                "mailbox": "no-such-box",
                "colour": "red",
            },
            actor=CLI,
        )
    assert set(bad.value.fields) >= {
        "name",
        "url",
        "event_types",
        "raw_max_bytes",
        "mailbox",
        "colour",
    }
    assert not WebhookEndpoint.objects.exists() and not AuditEvent.objects.exists()


def test_fan_out_filters_by_type_family_mailbox_and_client(receiver, make_client) -> None:
    oauth_client = make_client(name="c-filter")
    mailbox = world.mailbox(name="filtered", client=oauth_client)
    other = world.mailbox(name="other")
    client_id = oauth_client.pk
    grants = endpoint_at(receiver, "/grants", event_types=["grant.*"])
    boxed = endpoint_at(receiver, "/box", mailbox=mailbox.pk)
    client = endpoint_at(receiver, "/client", client=client_id)
    everything = endpoint_at(receiver, "/all")
    off = endpoint_at(receiver, "/off", enabled=False)
    authorized = emit("grant.authorized", client_id=client_id)
    received = emit("message.received", mailbox_id=mailbox.pk, client_id=client_id)
    elsewhere = emit("mailbox.failing", mailbox_id=other.pk)
    round_(now=timezone.now() - timedelta(days=1))  # fan out only: nothing due yet
    got = {(e, ev) for e, ev in Delivery.objects.values_list("endpoint_id", "event_id")}
    assert got == {
        (grants.pk, authorized.pk),
        (boxed.pk, received.pk),
        (client.pk, authorized.pk),
        (client.pk, received.pk),
        (everything.pk, authorized.pk),
        (everything.pk, received.pk),
        (everything.pk, elsewhere.pk),
    }
    assert off.pk not in {e for e, _ in got}
    assert not Event.objects.filter(dispatched=False).exists()


def test_an_event_rolled_back_with_its_change_delivers_nothing(receiver) -> None:
    endpoint_at(receiver, "/all")

    class Boom(Exception):
        pass

    with pytest.raises(Boom), transaction.atomic():
        event_record(type="grant.authorized", data={})
        raise Boom
    round_()
    assert not Delivery.objects.exists() and receiver.at("/all") == []
    event = emit()
    round_()
    assert [r.id for r in receiver.at("/all")] == [event.uid]


def test_an_event_committed_late_with_a_lower_id_is_still_fanned_out(receiver) -> None:
    endpoint_at(receiver, "/all")
    later = emit()
    round_()
    late = event_build(type="grant.authorized", data={"late": True})
    late.pk = later.pk - 1 if later.pk > 1 else later.pk + 1000
    with transaction.atomic():
        [late] = events_record([late])
    round_()
    assert {r.id for r in receiver.at("/all")} == {later.uid, late.uid}


def test_a_day_of_failures_turns_the_endpoint_failing_and_a_success_recovers_it(
    receiver,
) -> None:
    flaky = fail_first(2)
    receiver.behaviours["/day"] = flaky
    endpoint = endpoint_at(receiver, "/day")
    emit("message.sent")
    round_()
    endpoint.refresh_from_db()
    assert endpoint.failing_since is not None and endpoint.health == "ok"
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
        failing_since=timezone.now() - timedelta(hours=25)
    )
    time_passes()
    round_()
    endpoint.refresh_from_db()
    assert endpoint.health == "failing" and endpoint.health_reason == "webhook.failing"
    assert Event.objects.filter(type="webhook.failing", subject_id=str(endpoint.pk)).count() == 1
    time_passes()
    round_()
    endpoint.refresh_from_db()
    assert endpoint.health == "ok" and endpoint.failing_since is None
    assert endpoint.last_success_at is not None
    assert Event.objects.filter(type="webhook.recovered", subject_id=str(endpoint.pk)).count() == 1


def test_a_test_delivery_goes_to_its_endpoint_alone(receiver) -> None:
    one = endpoint_at(receiver, "/one")
    endpoint_at(receiver, "/two")
    delivery = webhook_endpoint_test(endpoint=one, actor=CLI)
    round_()
    assert [r.payload["type"] for r in receiver.at("/one")] == ["webhook.test"]
    assert receiver.at("/two") == []
    delivery.refresh_from_db()
    assert delivery.state == "delivered"
    assert AuditEvent.objects.filter(action="webhook.tested").count() == 1


def test_redeliver_one_and_everything_since_with_the_same_ids(receiver) -> None:
    endpoint = endpoint_at(receiver, "/again")
    first = emit()
    round_()
    delivery = Delivery.objects.get()
    assert delivery.state == "delivered"
    delivery_redeliver(delivery=delivery, actor=CLI)
    round_()
    assert [r.id for r in receiver.at("/again")] == [first.uid, first.uid]

    webhook_endpoint_update(endpoint=endpoint, values={"enabled": False}, actor=CLI)
    missed = emit()
    round_()  # disabled: fanned out to no one
    endpoint.refresh_from_db()
    webhook_endpoint_update(endpoint=endpoint, values={"enabled": True}, actor=CLI)
    count = deliveries_redeliver_since(
        endpoint=endpoint, since=first.created_at - timedelta(seconds=1), actor=CLI
    )
    assert count == 2
    round_()
    ids = [r.id for r in receiver.at("/again")]
    assert ids[2:] and sorted(ids[2:]) == sorted([first.uid, missed.uid])
    assert not receiver.rejected


def test_the_signing_secret_is_shown_once_and_never_again(receiver, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    endpoint, secret = webhook_endpoint_create(
        values={"name": "canary", "url": receiver.url("/canary")}, actor=CLI
    )
    assert secret.startswith("whsec_") and len(secret) > 40
    receiver.secrets["/canary"] = secret
    emit()
    round_()
    assert receiver.at("/canary") and not receiver.rejected
    _, rotated = webhook_endpoint_rotate_secret(endpoint=endpoint, actor=CLI)
    assert rotated != secret
    stored = WebhookEndpoint.objects.get(pk=endpoint.pk)
    texts = [
        repr(endpoint.secret),
        str(stored.secret),
        repr(stored.__dict__),
        caplog.text,
        *(str(a.__dict__) for a in AuditEvent.objects.all()),
        *(str(a.__dict__) for a in DeliveryAttempt.objects.all()),
        *(r.body.decode() for r in receiver.received),
    ]
    for text in texts:
        assert secret not in text and rotated not in text
        assert secret[6:] not in text and rotated[6:] not in text
    receiver.secrets["/canary"] = rotated  # the next attempts are signed with the new one
    emit()
    round_()
    assert len(receiver.at("/canary")) == 2 and not receiver.rejected


def test_hostile_endpoints_do_not_delay_a_healthy_one(receiver, settings) -> None:
    settings.MAILGRANT_WEBHOOK_TIMEOUT = 60
    settings.MAILGRANT_WEBHOOK_IN_FLIGHT = 2
    release = threading.Event()
    receiver.behaviours["/stuck"] = hang(release)
    sent: list[int] = []
    receiver.behaviours["/huge"] = endless(sent)
    receiver.behaviours["/moved"] = answer(302, headers={"Location": receiver.url("/x")})
    receiver.behaviours["/gone"] = answer(410)
    hostile = {
        path: endpoint_at(receiver, path, event_types=["grant.*"])
        for path in ("/stuck", "/huge", "/moved", "/gone")
    }
    healthy = endpoint_at(receiver, "/healthy")
    for _ in range(10):
        emit("grant.authorized")
    for _ in range(20):
        emit("message.sent")
    runtime = WorkerRuntime(jobs=[events_fan_out, deliveries_send_due], concurrency=6, tick=0.2)
    thread = threading.Thread(target=runtime.run, daemon=True)
    thread.start()
    try:
        wait_until(
            "every healthy delivery",
            lambda: Delivery.objects.filter(endpoint=healthy, state="delivered").count() == 30,
        )
        # Meanwhile the stuck endpoint holds its two slots, and no more.
        assert len(receiver.at("/stuck")) == 2
        assert not release.is_set()
        assert len({r.id for r in receiver.at("/healthy")}) == 30
        wait_until(
            "the hostile outcomes",
            lambda: (
                not WebhookEndpoint.objects.get(pk=hostile["/gone"].pk).enabled
                and DeliveryAttempt.objects.filter(delivery__endpoint=hostile["/moved"]).exists()
                and Delivery.objects.filter(endpoint=hostile["/huge"], state="delivered").count()
                == 10
            ),
        )
        moved = DeliveryAttempt.objects.filter(delivery__endpoint=hostile["/moved"]).first()
        assert moved is not None and "redirect" in moved.error
        assert receiver.at("/x") == []
        assert not Delivery.objects.filter(endpoint=hostile["/gone"], state="pending").exists()
    finally:
        release.set()
        runtime.stop()
        thread.join(30)
