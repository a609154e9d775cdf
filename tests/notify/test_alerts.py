"""Incidents and notices: reminders after MAILGRANT_ALERT_REMIND (the clock driven forward),
each channel's filters, a failing send retried with backoff, a webhook channel's notice handed
to its endpoint alone, two workers racing to open the same incident, a disabled channel, and
bad input to the services. Mailboxes fail for real (a closed port); mail goes to Django's
outbox or a real SMTP server on loopback."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.core import mail
from django.db import connection
from django.utils import timezone

from mailgrant.common.audit import CLI
from mailgrant.common.errors import Conflict, Invalid, PeerFailed
from mailgrant.common.models import Event
from mailgrant.mailboxes.services.mailboxes import mailbox_update
from mailgrant.notify.alerts.channels import (
    notification_channel_create,
    notification_channel_delete,
    notification_channel_test,
    notification_channel_update,
)
from mailgrant.notify.alerts.incidents import incidents_reconcile
from mailgrant.notify.alerts.notices import NOTICE_BACKOFF_CAP
from mailgrant.notify.models import Delivery, Incident, Notice, NotificationChannel, WebhookEndpoint
from tests.notify.alerts_support import SmtpSink, alert_round, closed_port, fail, failing_mailbox

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

OPS = "ops@example.test"


def _channel(name: str = "ops", **fields) -> NotificationChannel:
    fields.setdefault("recipients", [OPS])
    return notification_channel_create(name=name, actor=CLI, **fields)


def test_one_incident_for_many_failures_a_reminder_a_day_and_one_recovery(settings) -> None:
    settings.MAILGRANT_ALERT_REMIND = 24 * 3600
    _channel()
    mailbox = failing_mailbox("support@x")
    start = timezone.now()
    assert alert_round(now=start) == ["sent"]
    (opened,) = mail.outbox
    assert opened.subject == "[mailgrant] Mailbox support@x failing: connect.refused"
    assert "since" in opened.body and mailbox.health_hint in opened.body
    assert f"/admin/mailboxes/mailbox/{mailbox.pk}/change/" in opened.body
    assert "reminder every 24 hours" in opened.body

    for hour in range(1, 24):  # failing attempt after attempt: no notice
        fail(mailbox)
        assert alert_round(now=start + timedelta(hours=hour)) == []
    mailbox.refresh_from_db()
    assert mailbox.consecutive_failures >= 24 and len(mail.outbox) == 1

    assert alert_round(now=start + timedelta(hours=24, seconds=1)) == ["sent"]
    assert mail.outbox[1].subject.startswith("[mailgrant] Reminder: Mailbox support@x still")
    assert alert_round(now=start + timedelta(hours=30)) == []
    assert alert_round(now=start + timedelta(hours=48, seconds=2)) == ["sent"]
    assert Incident.objects.get().reminders == 2

    mailbox_update(mailbox=mailbox, values={"enabled": False})
    assert alert_round(now=start + timedelta(hours=49)) == ["sent"]
    assert mail.outbox[-1].subject == "[mailgrant] Resolved: Mailbox support@x switched off"
    assert alert_round(now=start + timedelta(hours=80)) == []
    assert len(mail.outbox) == 4 and Incident.objects.get().resolved_at is not None


def test_a_change_of_health_within_an_incident_is_not_a_new_one() -> None:
    _channel()
    mailbox = failing_mailbox("shared@x")
    alert_round()
    mailbox.health = "needs_reauthorization"
    mailbox.health_reason = "grant.needs_reauthorization"
    mailbox.save()
    assert alert_round() == []
    incident = Incident.objects.get()
    assert (incident.health, incident.reason) == ("needs_reauthorization", mailbox.health_reason)
    assert len(mail.outbox) == 1


def test_each_channel_hears_what_it_chose() -> None:
    everything = _channel("everything", recipients=["all@example.test"])
    _channel("reauth-only", recipients=["reauth@example.test"], healths=["needs_reauthorization"])
    _channel("grants-only", recipients=["grants@example.test"], subject_kinds=["grant"])
    first = failing_mailbox("first@x")
    _channel("second-only", recipients=["second@example.test"])
    second = failing_mailbox("second@x")
    notification_channel_update(
        channel=NotificationChannel.objects.get(name="second-only"),
        changes={"only_mailbox": second.pk},
        actor=CLI,
    )
    assert sorted(alert_round()) == ["sent"] * 3
    heard = sorted((m.to[0], m.subject.split()[2]) for m in mail.outbox)
    assert heard == [
        ("all@example.test", "first@x"),
        ("all@example.test", "second@x"),
        ("second@example.test", "second@x"),
    ]
    assert set(Notice.objects.values_list("channel", flat=True)) == {
        everything.pk,
        NotificationChannel.objects.get(name="second-only").pk,
    }
    assert first.health == "failing"


def test_a_channel_added_later_hears_of_what_is_open() -> None:
    failing_mailbox("early@x")
    alert_round()
    assert Incident.objects.count() == 1 and not mail.outbox
    _channel()
    assert alert_round() == ["sent"] and len(mail.outbox) == 1
    assert alert_round() == []


def test_a_disabled_channel_sends_nothing() -> None:
    _channel(enabled=False)
    failing_mailbox("quiet@x")
    assert alert_round() == []
    assert not mail.outbox and not Notice.objects.exists() and Incident.objects.count() == 1


def test_a_failing_send_is_retried_with_backoff_and_its_error_kept(settings) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", closed_port()
    _channel()
    failing_mailbox("retry@x")
    start = timezone.now()
    assert alert_round(now=start) == ["retry"]
    notice = Notice.objects.get()
    assert notice.state == "pending" and notice.attempts == 1 and notice.last_error
    assert start < notice.next_attempt_at <= start + timedelta(seconds=NOTICE_BACKOFF_CAP)
    assert alert_round(now=start + timedelta(seconds=1)) == []  # not due yet
    with SmtpSink() as sink:
        settings.EMAIL_PORT = sink.port
        assert alert_round(now=notice.next_attempt_at + timedelta(seconds=1)) == ["sent"]
        assert len(sink.messages) == 1 and sink.messages[0][1] == [OPS]
        assert b"retry@x failing: connect.refused" in sink.messages[0][2]
    notice.refresh_from_db()
    assert (notice.state, notice.attempts, notice.last_error) == ("sent", 2, "")
    assert Incident.objects.count() == 1


def test_a_webhook_channel_hands_an_incident_event_to_its_endpoint_alone() -> None:
    endpoint = WebhookEndpoint.objects.create(name="pager", url="https://pager.example.test/")
    other = WebhookEndpoint.objects.create(name="other", url="https://other.example.test/")
    _channel("pager", kind="webhook", recipients=[], endpoint="pager")
    failing_mailbox("hooked@x")
    assert alert_round() == []  # nothing for the email sender: the delivery engine sends it
    notice = Notice.objects.get()
    assert notice.state == "handed" and notice.delivery is not None
    delivery = Delivery.objects.get()
    assert delivery.endpoint == endpoint and delivery.state == "pending"
    event = Event.objects.get(type="incident.opened")
    assert event.dispatched and delivery.event == event
    assert event.data["object"]["name"] == "hooked@x"
    assert event.data["incident"]["reason"] == "connect.refused"
    assert not Delivery.objects.filter(endpoint=other).exists()


def test_a_test_notice_is_sent_now_or_says_why_not(settings) -> None:
    channel = _channel()
    notification_channel_test(channel=channel, actor=CLI)
    assert mail.outbox[0].subject == "[mailgrant] Test notice from channel ops"
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", closed_port()
    with pytest.raises(PeerFailed, match="not sent"):
        notification_channel_test(channel=channel, actor=CLI)
    assert list(Notice.objects.order_by("id").values_list("state", flat=True)) == [
        "sent",
        "failed",
    ]


def test_bad_input_is_refused_with_each_field_and_saves_nothing() -> None:
    incoming = failing_mailbox("in@x")
    with pytest.raises(Invalid) as refused:
        notification_channel_create(
            name="",
            recipients=["not an address"],
            mailbox=incoming.pk,
            healths=["broken"],
            actor=CLI,
        )
    assert set(refused.value.fields) == {"name", "recipients", "mailbox", "healths"}
    with pytest.raises(Invalid) as refused:
        notification_channel_create(name="hook", kind="webhook", actor=CLI)
    assert set(refused.value.fields) == {"endpoint"}
    with pytest.raises(Invalid, match="No mailbox"):
        _channel(mailbox="nowhere")
    with pytest.raises(Invalid, match="at least one"):
        _channel(recipients=[])
    with pytest.raises(Invalid, match="two@"):
        _channel(recipients=["one@example.test, two@example.test"])
    with pytest.raises(Invalid, match="Unknown: printer"):
        _channel(subject_kinds=["printer"])
    assert not NotificationChannel.objects.exists()

    channel = _channel()
    with pytest.raises(Conflict):
        _channel()
    with pytest.raises(Invalid):
        notification_channel_update(channel=channel, changes={"recipients": ["x"]}, actor=CLI)
    with pytest.raises(Invalid):
        notification_channel_update(channel=channel, changes={"secret": "x"}, actor=CLI)
    channel.refresh_from_db()
    assert channel.recipients == [OPS]
    notification_channel_delete(channel=channel, actor=CLI)
    assert not NotificationChannel.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_two_workers_racing_open_the_incident_once() -> None:
    _channel()
    failing_mailbox("raced@x")
    now = timezone.now()
    barrier = threading.Barrier(4)
    outcomes: list[object] = []

    def worker(name: str) -> None:
        try:
            barrier.wait()
            outcomes.append(incidents_reconcile(now=now, actor=CLI).opened)
        except Exception as exc:
            outcomes.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes, key=str) == [0, 0, 0, 1]
    assert Incident.objects.count() == 1 and Notice.objects.count() == 1
    assert alert_round() == ["sent"] and len(mail.outbox) == 1
