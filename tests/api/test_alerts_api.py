"""/api/v1/alerts/channels (CRUD and test) and /api/v1/incidents: the services' rules as 400s
naming each field, scopes enforced, incidents listed open or resolved."""

import pytest
from django.core import mail

from mailgrant.notify.models import NotificationChannel
from tests.notify.alerts_support import alert_round, failing_mailbox

pytestmark = pytest.mark.django_db


def test_channel_crud_and_test(api) -> None:
    created = api.post("/alerts/channels", {"name": "ops", "recipients": ["ops@example.test"]})
    assert created.status_code == 201, created.content
    channel = created.json()
    assert channel["healths"] == ["failing", "needs_reauthorization"]
    assert channel["subject_kinds"] == ["grant", "mailbox", "client", "directory", "webhook"]
    path = f"/alerts/channels/{channel['id']}"
    assert api.get("/alerts/channels").json()["items"][0]["name"] == "ops"
    patched = api.patch(path, {"healths": ["failing"], "enabled": False})
    assert patched.status_code == 200 and patched.json()["healths"] == ["failing"]
    assert api.get(path).json()["enabled"] is False
    tested = api.post(f"{path}/test")
    assert tested.status_code == 200 and tested.json() == {"state": "sent"}
    assert mail.outbox[0].to == ["ops@example.test"]
    assert api.delete(path).status_code == 204
    assert api.get(path).status_code == 404


def test_bad_input_names_each_field_and_saves_nothing(api) -> None:
    refused = api.post(
        "/alerts/channels", {"name": "ops", "recipients": ["nope"], "mailbox": "nowhere"}
    )
    assert refused.status_code == 400
    assert {f["field"] for f in refused.json()["fields"]} == {"recipients", "mailbox"}
    assert api.post("/alerts/channels", {"name": "hook", "kind": "webhook"}).status_code == 400
    assert api.post("/alerts/channels", {"name": "x", "healths": ["sad"]}).status_code in (400, 422)
    assert not NotificationChannel.objects.exists()
    body = {"name": "ops", "recipients": ["ops@example.test"]}
    assert api.post("/alerts/channels", body).status_code == 201
    assert api.post("/alerts/channels", body).status_code == 409


def test_scopes(api_as) -> None:
    reader = api_as("read")
    assert reader.get("/alerts/channels").status_code == 200
    body = {"name": "ops", "recipients": ["ops@example.test"]}
    assert reader.post("/alerts/channels", body).status_code == 403
    assert api_as("tokens").get("/incidents").status_code == 403


def test_incidents_listed_open_and_resolved(api) -> None:
    failing_mailbox("listed@x")
    alert_round()
    (incident,) = api.get("/incidents?open=true").json()["items"]
    assert (incident["kind"], incident["name"], incident["health"]) == (
        "mailbox",
        "listed@x",
        "failing",
    )
    assert incident["reason"] == "connect.refused" and incident["resolved_at"] is None
    assert api.get("/incidents?open=false").json()["items"] == []
