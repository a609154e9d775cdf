"""The same mailbox input gets the same answer through the API, the command line and the admin:
the rules (defaults, how the fields go together, a taken name) are the service's, not each
entry point's."""

from __future__ import annotations

import io
import sys

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from mailgrant.mailboxes.models import Mailbox

pytestmark = pytest.mark.django_db


@pytest.fixture
def cli_stdin(monkeypatch):
    def give(text: str) -> None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(text))

    return give


FIELDS = {
    "host": "smtp.example.test",
    "username": "support@example.test",
    "auth_method": "password",
}


def _api(api, name: str, fields: dict) -> tuple[bool, str]:
    response = api.post("/mailboxes", {"name": name, **fields, "password": "pw"})
    if response.status_code == 201:
        return True, ""
    body = response.json()
    return False, ",".join(sorted(f["field"] for f in body.get("fields", [])) or [body["code"]])


def _cli(name: str, fields: dict, stdin) -> tuple[bool, str]:
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in fields.items()]
    stdin("pw\n")
    try:
        call_command("mailbox", "add", f"--name={name}", *flags, "--password-stdin")
    except CommandError as exc:
        text = str(exc)
        fields_at_fault = [
            part.split(":")[0].strip() for part in text.removeprefix("Invalid: ").split(";")
        ]
        return False, ",".join(sorted(fields_at_fault)) if text.startswith(
            "Invalid"
        ) else "conflict"
    return True, ""


def _admin(admin_client, name: str, fields: dict) -> tuple[bool, str]:
    data = {"name": name, "password": "pw", "enabled": "on", "folder": "INBOX",
            "post_fetch_action": "keep", "poll_interval": "300", "sasl_mechanism": "xoauth2",
            "security": "ssl", "protocol": "imap", "direction": "", "port": "",
            "smtp_username": "", "oauth_client": "", "grant": "", **fields}  # fmt: skip
    response = admin_client.post(reverse("admin:mailboxes_mailbox_add"), data)
    if response.status_code == 302:
        return True, ""
    errors = response.context["adminform"].form.errors
    if "name" in errors and "already exists" in str(errors["name"]):
        return False, "conflict"
    return False, ",".join(sorted(errors))


CASES = [
    # SMTP with no direction nor port: outgoing, on the submission port of its security.
    ({"protocol": "smtp", "security": "starttls"}, (True, "")),
    ({"protocol": "pop3", "post_fetch_action": "mark_seen"}, (False, "post_fetch_action")),
    ({"protocol": "smtp", "direction": "incoming"}, (False, "direction")),
    ({"protocol": "imap", "port": "70000"}, (False, "port")),
]


@pytest.mark.parametrize(("fields", "expected"), CASES)
def test_the_api_the_command_line_and_the_admin_agree(
    api, admin_client, cli_stdin, fields, expected
) -> None:
    fields = {**FIELDS, **fields}
    answers = {
        "api": _api(api, "via-api", fields),
        "cli": _cli("via-cli", fields, cli_stdin),
        "admin": _admin(admin_client, "via-admin", fields),
    }
    assert answers == dict.fromkeys(answers, expected)
    made = Mailbox.objects.order_by("name")
    if expected[0]:
        assert [(m.direction, m.port) for m in made] == [("outgoing", 587)] * 3


def test_a_taken_name_is_refused_by_all_three(api, admin_client, cli_stdin) -> None:
    fields = {**FIELDS, "protocol": "imap"}
    assert _api(api, "taken", fields) == (True, "")
    assert _api(api, "taken", fields) == (False, "conflict")
    assert _cli("taken", fields, cli_stdin) == (False, "conflict")
    assert _admin(admin_client, "taken", fields) == (False, "conflict")
    assert Mailbox.objects.count() == 1
