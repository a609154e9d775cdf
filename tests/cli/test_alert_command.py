"""`mailgrant alert list|add|delete|test` in this process: the services' rules, one line on
failure, a test notice sent now."""

import json

import pytest
from django.core import mail
from django.core.management.base import CommandError

from mailgrant.notify.models import NotificationChannel

pytestmark = pytest.mark.django_db


def test_add_list_test_and_delete(cli) -> None:
    added = cli("alert", "add", "ops", "--to", "ops@example.test", "--kinds", "grant,mailbox")
    assert added.stdout == "Added alert channel ops.\n"
    listed = json.loads(cli("alert", "list", "--json").stdout)
    assert listed[0]["recipients"] == ["ops@example.test"]
    assert listed[0]["subject_kinds"] == ["grant", "mailbox"]
    assert "ops" in cli("alert", "list").stdout
    assert cli("alert", "test", "ops").stdout == "Test notice sent to ops@example.test.\n"
    assert mail.outbox[0].subject == "[mailgrant] Test notice from channel ops"
    assert cli("alert", "delete", "ops", "--yes").stdout == "Deleted alert channel ops.\n"
    assert not NotificationChannel.objects.exists()


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("--to", "nope"), "recipients:"),
        ((), "recipients: An email channel needs at least one address"),
        (("--kind", "webhook"), "endpoint: A webhook channel needs"),
        (("--to", "a@example.test", "--mailbox", "nowhere"), "mailbox: No mailbox 'nowhere'"),
        (("--to", "a@example.test", "--healths", "sad"), "healths: Unknown: sad"),
    ],
)
def test_bad_input_is_one_line_and_saves_nothing(cli, args, words) -> None:
    with pytest.raises(CommandError, match=words):
        cli("alert", "add", "ops", *args)
    assert not NotificationChannel.objects.exists()


def test_an_unknown_channel(cli) -> None:
    with pytest.raises(CommandError, match="No alert channel named 'x'"):
        cli("alert", "test", "x")
