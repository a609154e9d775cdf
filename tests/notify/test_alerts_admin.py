"""The admin's alert sections: a channel added through its form (the services' rules shown on
the form), incidents and notices listed read-only."""

import pytest

from mailgrant.common.models import AuditEvent
from mailgrant.notify.models import NotificationChannel
from tests.notify.alerts_support import alert_round, failing_mailbox

pytestmark = pytest.mark.django_db

ADD = "/admin/notify/notificationchannel/add/"


def _form(**fields):
    data = {
        "name": "ops",
        "kind": "email",
        "enabled": "on",
        "recipients": "ops@example.test",
        "healths": ["failing", "needs_reauthorization"],
        "subject_kinds": ["mailbox"],
    }
    data.update(fields)
    return data


def test_a_channel_added_through_the_form(admin_client) -> None:
    assert admin_client.get(ADD).status_code == 200
    refused = admin_client.post(ADD, _form(recipients="not an address"))
    assert refused.status_code == 200 and b"not an e-mail address" in refused.content
    refused = admin_client.post(ADD, _form(kind="webhook", recipients=""))
    assert b"A webhook channel needs the endpoint" in refused.content
    assert not NotificationChannel.objects.exists()
    saved = admin_client.post(ADD, _form(recipients="a@example.test\nb@example.test"))
    assert saved.status_code == 302, saved.content[:2000]
    channel = NotificationChannel.objects.get()
    assert channel.recipients == ["a@example.test", "b@example.test"]
    assert channel.subject_kinds == ["mailbox"]
    assert AuditEvent.objects.filter(action="notification_channel.created").count() == 1
    change = f"/admin/notify/notificationchannel/{channel.pk}/change/"
    assert b"b@example.test" in admin_client.get(change).content
    assert admin_client.post(change, _form(name="ops2")).status_code == 302
    assert NotificationChannel.objects.get().name == "ops2"


def test_incidents_and_notices_are_listed(admin_client) -> None:
    admin_client.post(ADD, _form())
    failing_mailbox("admin@x")
    alert_round()
    incidents = admin_client.get("/admin/notify/incident/")
    assert incidents.status_code == 200 and b"admin@x" in incidents.content
    notices = admin_client.get("/admin/notify/notice/")
    assert notices.status_code == 200 and b"opened" in notices.content
    assert admin_client.get("/admin/notify/incident/add/").status_code == 403
