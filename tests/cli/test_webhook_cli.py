"""`mailgrant webhook ...` and `mailgrant events list`: one service call each, the signing
secret printed once (on add, alone on stdout) and never again, failures one line and exit 1."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.core.management.base import CommandError
from django.db import transaction
from django.utils import timezone

from mailgrant.common.events import event_record
from mailgrant.notify.models import Delivery, DeliveryAttempt, WebhookEndpoint
from tests.cli.conftest import assert_failed, assert_usage

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("webhook_hosts_unresolved")]


ADD = ("webhook", "add", "--name", "app", "--url", "https://app.example.test/hooks")


def test_the_secret_is_printed_once_on_add_and_never_again(cli) -> None:
    added = cli(*ADD, "--event-type", "message.received", "--include-raw")
    secret = added.stdout.strip()
    assert secret.startswith("whsec_") and "\n" not in secret  # alone: SECRET=$(...)
    assert "shown this once" in added.stderr
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.secret.reveal() == secret and endpoint.include_raw is True
    assert endpoint.event_types == ["message.received"]

    with transaction.atomic():
        event = event_record(type="message.received", data={})
    delivery = Delivery.objects.create(endpoint=endpoint, event=event, attempts=1)
    DeliveryAttempt.objects.create(
        delivery=delivery, at=timezone.now(), status_code=500, duration_ms=3, response_head="x"
    )
    outputs = [
        cli("webhook", "list"),
        cli("webhook", "list", "--json"),
        cli("webhook", "update", "app", "--no-enabled", "--json"),
        cli("webhook", "update", "app", "--enabled"),
        cli("webhook", "test", "app"),
        cli("webhook", "test", "app", "--json"),
        cli("webhook", "deliveries", "app"),
        cli("webhook", "deliveries", "app", "--json"),
        cli("webhook", "redeliver", "app", "--delivery", str(delivery.pk)),
        cli("webhook", "redeliver", "app", "--since", "2020-01-01"),
        cli("events", "list"),
        cli("events", "list", "--json"),
    ]
    for output in outputs:
        assert secret not in output.stdout + output.stderr
    assert secret[6:20] not in "".join(o.stdout + o.stderr for o in outputs)


def test_lifecycle(cli, make_client) -> None:
    make_client(name="billing")
    cli(*ADD, "--client", "billing", "--event-type", "grant.*")
    rows = json.loads(cli("webhook", "list", "--json").stdout)
    assert [(r["name"], r["event_types"], r["enabled"]) for r in rows] == [
        ("app", ["grant.*"], True)
    ]
    shown = json.loads(
        cli("webhook", "update", "app", "--url", "http://x.example.test/", "--json").stdout
    )
    assert shown["url"] == "http://x.example.test/" and "secret" not in shown
    cli("webhook", "update", "app", "--event-type", "", "--client", "")
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.event_types == [] and endpoint.client is None

    queued = cli("webhook", "test", "app")
    assert "Test event evt_" in queued.stdout
    listed = cli("webhook", "deliveries", "app")
    assert "webhook.test" in listed.stdout and "pending" in listed.stdout
    cli("webhook", "delete", "app", "--yes")
    assert not WebhookEndpoint.objects.exists()


def test_redeliver(cli) -> None:
    cli(*ADD)
    endpoint = WebhookEndpoint.objects.get()
    now = timezone.now()
    for days in (3, 1):
        with transaction.atomic():
            event = event_record(type="message.sent", data={}, at=now - timedelta(days=days))
        Delivery.objects.create(endpoint=endpoint, event=event, state="failed", attempts=9)
    since = (now - timedelta(days=2)).isoformat()
    assert "1 deliveries" in cli("webhook", "redeliver", "app", "--since", since).stdout
    assert Delivery.objects.filter(state="pending").count() == 1
    with pytest.raises(CommandError, match="No delivery 987654"):
        cli("webhook", "redeliver", "app", "--delivery", "987654")


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (("--url", "ftp://x"), "url"),
        (("--event-type", "message.nope"), "event_types: Unknown event type(s): message.nope."),
        (("--raw-max-bytes", "0"), "raw_max_bytes"),
        (("--mailbox", "nope"), "mailbox"),
    ],
)
def test_bad_input_is_one_clear_line_and_adds_nothing(cli, extra, words) -> None:
    base = list(ADD)
    if extra[0] == "--url":
        base = list(ADD[:-2])
    with pytest.raises(CommandError, match="Invalid: ") as failed:
        cli(*base, *extra)
    assert words in str(failed.value)
    assert not WebhookEndpoint.objects.exists()


def test_events_list_pages_with_a_cursor(cli) -> None:
    with transaction.atomic():
        uids = [event_record(type="message.sent", data={"n": n}).uid for n in range(3)]
    first = cli("events", "list", "--limit", "2")
    assert [line.split()[2] for line in first.stdout.splitlines()] == uids[:2]
    cursor = first.stderr.split("--after ")[1].split()[0]
    rest = json.loads(cli("events", "list", "--after", cursor, "--json").stdout)
    assert [e["id"] for e in rest["events"]] == uids[2:] and rest["has_more"] is False
    grants = json.loads(cli("events", "list", "--type", "grant.*", "--json").stdout)
    assert grants["events"] == []
    with pytest.raises(CommandError, match="no such event type"):
        cli("events", "list", "--type", "nope.x")


def test_exit_codes_as_a_process(mailgrant) -> None:
    mailgrant.env["MAILGRANT_WEBHOOK_ALLOW_PRIVATE"] = "true"  # as webhook_hosts_unresolved
    added = mailgrant(*ADD)
    assert added.returncode == 0, added.stderr
    secret = added.stdout.strip()
    assert secret.startswith("whsec_")
    assert_failed(mailgrant(*ADD), "A webhook endpoint named 'app' exists already.")
    assert_failed(mailgrant("webhook", "test", "nope"), "No webhook endpoint named 'nope'.")
    assert_failed(mailgrant("webhook", "delete", "app"), "Add --yes to confirm")
    assert_failed(mailgrant("webhook", "update", "app", "--url", "x"), "Invalid: url")
    assert_usage(mailgrant("webhook"))
    assert_usage(mailgrant("webhook", "redeliver", "app"))
    assert_usage(mailgrant("events", "list", "--limit", "0"), "between 1 and 1000")
    listed = mailgrant("webhook", "list")
    assert listed.returncode == 0 and secret not in listed.stdout + listed.stderr
    rotated = mailgrant("webhook", "rotate-secret", "app")
    assert rotated.returncode == 0, rotated.stderr
    new = rotated.stdout.strip()
    assert new.startswith("whsec_") and new != secret and "shown this once" in rotated.stderr
    shown = mailgrant("webhook", "list", "--json")
    assert secret not in shown.stdout and new not in shown.stdout
