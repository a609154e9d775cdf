"""GET /api/v1/events: the outbox as an app polls it, oldest first, every event exactly once."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import transaction
from django.utils import timezone

from mailgrant.common.events import event_record
from mailgrant.common.models import Event

pytestmark = pytest.mark.django_db


def record(type: str = "message.sent", **fields: Any) -> Event:
    with transaction.atomic():
        return event_record(type=type, data=fields.pop("data", {"n": 1}), **fields)


@pytest.fixture
def events_api(api_as: Any) -> Any:
    return api_as("events")


def poll_all(events_api: Any, *, cursor: str = "", limit: int = 3, **query: Any) -> Any:
    params = {"limit": limit, **query}
    if cursor:
        params["after"] = cursor
    response = events_api.get("/events", data=params)
    assert response.status_code == 200, response.content
    return response.json()


def test_paging_gives_every_event_once_while_new_ones_are_written(events_api) -> None:
    written = [record(data={"n": n}).uid for n in range(7)]
    seen: list[str] = []
    cursor = ""
    for round_ in range(20):
        page = poll_all(events_api, cursor=cursor)
        seen += [e["id"] for e in page["events"]]
        cursor = page["next"]
        if round_ < 4:  # new events land between the pages
            written += [record(data={"n": 100 + round_}).uid for _ in range(2)]
        elif not page["has_more"]:
            break
    assert seen == written  # each once, oldest first
    # Caught up: polling again from the cursor answers nothing, and keeps the cursor.
    page = poll_all(events_api, cursor=cursor)
    assert page == {"events": [], "next": cursor, "has_more": False}
    written.append(record().uid)
    assert [e["id"] for e in poll_all(events_api, cursor=cursor)["events"]] == written[-1:]


def test_a_fresh_gap_in_ids_holds_later_events_back_until_it_settles(events_api) -> None:
    # On PostgreSQL an id taken by a transaction still open becomes visible after later ids:
    # a poller that moved past it would never see it.
    first = record()
    with transaction.atomic():
        later = event_record(type="message.sent", data={})
    Event.objects.filter(pk=later.pk).update(id=first.pk + 2)  # id first+1 "still open"
    page = poll_all(events_api)
    assert [e["id"] for e in page["events"]] == [first.uid]
    assert page["next"] == str(first.pk) and page["has_more"] is True

    # Once the gap is older than MAILGRANT_EVENTS_SETTLE it is a rolled-back insert.
    Event.objects.filter(pk=first.pk + 2).update(created_at=timezone.now() - timedelta(minutes=5))
    page = poll_all(events_api, cursor=page["next"])
    assert [e["id"] for e in page["events"]] == [later.uid]


def test_filters(events_api, make_client) -> None:
    client = make_client()
    sent = record("message.sent", mailbox_id=7, data={})
    grant = record("grant.authorized", client_id=client.pk, subject=client, data={})
    failing = record("grant.needs_reauthorization", client_id=client.pk, data={})
    old = record("mailbox.failing", mailbox_id=7, data={}, at=timezone.now() - timedelta(days=2))

    def ids(**query: Any) -> list[str]:
        return [e["id"] for e in poll_all(events_api, limit=100, **query)["events"]]

    assert ids(type="grant.*") == [grant.uid, failing.uid]
    assert ids(type=["message.sent", "mailbox.failing"]) == [sent.uid, old.uid]
    assert ids(mailbox=7) == [sent.uid, old.uid]
    assert ids(client=client.pk) == [grant.uid, failing.uid]
    assert ids(subject="oauth.oauthclient") == [grant.uid]
    assert ids(subject=f"oauth.oauthclient:{client.pk}") == [grant.uid]
    since = (timezone.now() - timedelta(days=1)).isoformat()
    assert old.uid not in ids(since=since) and ids(until=since) == [old.uid]
    # A filtered page still moves the cursor past what did not match.
    page = poll_all(events_api, type="grant.needs_reauthorization")
    assert page["next"] == str(old.pk)
    # The cursor may be an event's id too.
    assert ids(after=grant.uid) == [failing.uid, old.uid]


def test_one_event_is_its_webhook_body(events_api) -> None:
    event = record("message.sent", data={"message": {"id": 3}})
    response = events_api.get(f"/events/{event.uid}")
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == event.uid and body["type"] == "message.sent" and body["version"] == 1
    assert body["data"]["message"] == {"id": 3} and body["timestamp"].endswith("Z")
    missing = events_api.get("/events/evt_nope")
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"type": "message.nope"}, "type"),
        ({"type": "nope.*"}, "type"),
        ({"after": "evt_unknown"}, "after"),
        ({"limit": 0}, "limit"),
        ({"limit": 5000}, "limit"),
        ({"since": "yesterday"}, "since"),
        ({"since": "2027-01-01T00:00:00"}, "since"),  # no time zone: ambiguous
        ({"until": "0.5"}, "until"),  # a Unix time to pydantic's lax mode
        ({"mailbox": "x"}, "mailbox"),
    ],
)
def test_bad_queries_are_clear_400s(events_api, query, field) -> None:
    response = events_api.get("/events", data=query)
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == "validation_error"
    assert field in body["message"], body


def test_the_events_scope_is_needed(api_as) -> None:
    record()
    response = api_as("read", "write").get("/events")
    assert response.status_code == 403 and "'events'" in response.json()["message"]
