"""`mailgrant mailbox add|show|update|delete` in this process: the same rules as the admin form
and the API (the service checks them), the password only from a file or stdin."""

import json

import pytest
from django.core.management.base import CommandError

from mailgrant.common.models import AuditEvent
from mailgrant.mailboxes.models import Mailbox
from mailgrant.oauth.models import PendingAuthorization

pytestmark = pytest.mark.django_db

PASSWORD = "canary-cli-mailbox-password-0c1d"
IMAP = ("mailbox", "add", "--name", "support", "--host", "imap.example.test", "--port", "993",
        "--username", "support@example.test")  # fmt: skip


# fmt: off
BAD_INPUT = [
    (("--protocol", "smtp", "--direction", "incoming"), "direction: SMTP is for outgoing"),
    ((), "oauth_client: Choose the OAuth client"),
    (("--auth-method", "password"), "password: Enter the password"),
    (("--oauth-client", "Google", "--grant", "{other_grant}"), "grant: This grant belongs"),
    (("--oauth-client", "Google", "--protocol", "pop3", "--post-fetch-action", "mark_seen"),
     "post_fetch_action: POP3 can only keep or delete"),
    (("--oauth-client", "Google", "--post-fetch-action", "explode"),
     "post_fetch_action: Use keep, mark_seen, delete or move:"),
    (("--oauth-client", "Google", "--port", "70000"), "port: Ensure this value"),
    (("--oauth-client", "Google", "--grant", "abc"), "grant: expected a grant id"),
    (("--oauth-client", "Nope"), "No OAuth client named 'Nope'"),
    (("--oauth-client", "Google", "--grant", "999999"), "No grant 999999"),
]
# fmt: on


def test_password_mailbox_from_stdin_and_file(cli, tmp_path) -> None:
    added = cli(*IMAP, "--auth-method", "password", "--password-stdin", stdin=PASSWORD + "\n")
    assert added.stdout == "Added mailbox support.\n"
    assert Mailbox.objects.get().password.reveal() == PASSWORD
    shown = json.loads(cli("mailbox", "show", "support", "--json").stdout)
    assert shown["has_password"] is True and "password" not in shown
    assert (shown["protocol"], shown["direction"], shown["port"]) == ("imap", "incoming", 993)
    assert shown["oauth_client"] is None and shown["enabled"] is True
    path = tmp_path / "password"
    path.write_text("new-" + PASSWORD)
    cli("mailbox", "update", "support", "--password-file", str(path))
    assert Mailbox.objects.get().password.reveal() == "new-" + PASSWORD
    outputs = [
        added.stdout,
        json.dumps(shown),
        cli("mailbox", "show", "support").stdout,
        cli("mailbox", "list", "--json").stdout,
        cli("mailbox", "update", "support", "--folder", "Archive", "--json").stdout,
    ]
    for output in outputs:
        assert PASSWORD not in output
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"mailbox.created", "mailbox.updated"} <= actions
    for event in AuditEvent.objects.all():
        assert PASSWORD not in event.message


def test_oauth_mailbox_with_client_and_grant(cli, make_client, make_grant) -> None:
    client = make_client(name="Google")
    grant = make_grant(client)
    cli(*IMAP, "--oauth-client", "Google", "--grant", str(grant.pk), "--sasl-mechanism",
        "oauthbearer", "--post-fetch-action", "move:Done", "--poll-interval", "60")  # fmt: skip
    shown = json.loads(cli("mailbox", "show", "support", "--json").stdout)
    assert (shown["oauth_client"], shown["grant"]) == ("Google", grant.pk)
    assert (shown["sasl_mechanism"], shown["post_fetch_action"]) == ("oauthbearer", "move:Done")
    cli("mailbox", "update", "support", "--grant", "")
    assert Mailbox.objects.get().grant is None  # the client's default grant from now on
    cli("mailbox", "add", "--name", "out", "--protocol", "smtp", "--host", "smtp.example.test",
        "--port", "587", "--security", "starttls", "--username", "support@example.test",
        "--smtp-username", "agent@example.test", "--oauth-client", "Google")  # fmt: skip
    out = Mailbox.objects.get(name="out")
    assert out.direction == "outgoing" and out.login_username == "agent@example.test"


def test_update_changes_only_what_is_given(cli, make_client) -> None:
    make_client(name="Google")
    cli(*IMAP, "--oauth-client", "Google")
    before = json.loads(cli("mailbox", "show", "support", "--json").stdout)
    after = json.loads(cli("mailbox", "update", "support", "--disabled", "--json").stdout)
    assert {k for k in after if after[k] != before[k]} == {"enabled"}
    cli("mailbox", "update", "support", "--enabled", "--name", "helpdesk", "--port", "1993")
    mailbox = Mailbox.objects.get()
    assert (mailbox.name, mailbox.enabled, mailbox.port) == ("helpdesk", True, 1993)
    with pytest.raises(CommandError, match="Nothing to change"):
        cli("mailbox", "update", "helpdesk")


@pytest.mark.parametrize(("flags", "error"), BAD_INPUT)
def test_bad_input_is_refused_and_nothing_saved(cli, make_client, make_grant, flags, error) -> None:
    make_client(name="Google")
    other_grant = make_grant(make_client(name="other"))
    flags = tuple(f.replace("{other_grant}", str(other_grant.pk)) for f in flags)
    with pytest.raises(CommandError, match=error):
        cli(*IMAP, *flags)
    assert not Mailbox.objects.exists()


def test_bad_update_keeps_the_mailbox_as_it_was(cli, make_client) -> None:
    make_client(name="Google")
    cli(*IMAP, "--oauth-client", "Google")
    with pytest.raises(CommandError, match="oauth_client: Choose the OAuth client"):
        cli("mailbox", "update", "support", "--oauth-client", "")
    with pytest.raises(CommandError, match="direction: SMTP is for outgoing"):
        cli("mailbox", "update", "support", "--protocol", "smtp", "--port", "587")
    mailbox = Mailbox.objects.get()
    assert (mailbox.oauth_client.name, mailbox.protocol, mailbox.port) == ("Google", "imap", 993)


def test_duplicate_and_unknown_names(cli, make_client) -> None:
    make_client(name="Google")
    cli(*IMAP, "--oauth-client", "Google")
    with pytest.raises(CommandError, match="A mailbox named 'support' exists already"):
        cli(*IMAP, "--oauth-client", "Google")
    cli("mailbox", "add", "--name", "other", "--host", "h", "--port", "993", "--username", "u",
        "--oauth-client", "Google")  # fmt: skip
    with pytest.raises(CommandError, match="A mailbox named 'support' exists already"):
        cli("mailbox", "update", "other", "--name", "support")
    for args in (("show", "nope"), ("update", "nope", "--port", "1"), ("delete", "nope")):
        with pytest.raises(CommandError, match="No mailbox named 'nope'"):
            cli("mailbox", *args)


def test_delete(cli, make_client) -> None:
    make_client(name="Google")
    cli(*IMAP, "--oauth-client", "Google")
    with pytest.raises(CommandError, match="Add --yes to confirm"):
        cli("mailbox", "delete", "support")
    with pytest.raises(CommandError, match="Nothing was deleted"):
        cli("mailbox", "delete", "support", stdin="no\n", tty=True)
    asked = cli("mailbox", "delete", "support", stdin="y\n", tty=True)
    assert "Delete mailbox support and its index of 0 message(s)" in asked.stderr
    assert asked.stdout == "Deleted mailbox support.\n" and not Mailbox.objects.exists()
    cli(*IMAP, "--oauth-client", "Google")
    cli("mailbox", "delete", "support", "--yes")
    assert not Mailbox.objects.exists()
    assert AuditEvent.objects.filter(action="mailbox.deleted").count() == 2


def test_authorize_prints_the_url_for_the_mailbox_account(cli, make_client) -> None:
    make_client(name="Google")
    cli(*IMAP, "--oauth-client", "Google")
    started = cli("mailbox", "authorize", "support")
    assert started.stdout.startswith("https://provider.invalid/authorize?")
    assert "login_hint=support%40example.test" in started.stdout
    assert started.stdout.count("\n") == 1 and "Open this URL" in started.stderr
    mailbox = Mailbox.objects.get()
    assert mailbox.grant.account == "support@example.test" and not mailbox.grant.is_default
    pending = PendingAuthorization.objects.get()
    assert (pending.grant_id, pending.purpose) == (mailbox.grant_id, "cli")
    cli("mailbox", "update", "support", "--auth-method", "password", "--oauth-client", "",
        "--grant", "", "--password-stdin", stdin="pw")  # fmt: skip
    with pytest.raises(CommandError, match="Choose the OAuth client this mailbox logs in with"):
        cli("mailbox", "authorize", "support")
    with pytest.raises(CommandError, match="No mailbox named 'nope'"):
        cli("mailbox", "authorize", "nope")
