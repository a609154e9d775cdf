"""`mailgrant grant ...` in this process: grants by id, over the services the API uses."""

import json
from datetime import datetime

import pytest
from django.core.management.base import CommandError

from mailgrant.common.models import AuditEvent
from mailgrant.mailboxes.models import Mailbox
from mailgrant.oauth.models import Grant

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_clients(make_client, make_grant):
    """Client a with its default grant (alice) and a second one (bob); client b with one."""
    a, b = make_client(name="a"), make_client(name="b")
    alice = make_grant(a, access_token="canary-access-a1", refresh_token="canary-refresh-a1")
    bob = Grant.objects.create(client=a, account="bob@example.test")
    carol = make_grant(b, account="carol@example.test", access_token="canary-access-b1")
    return alice, bob, carol


def test_list_and_show_without_tokens(cli, two_clients) -> None:
    alice, bob, carol = two_clients
    every = json.loads(cli("grant", "list", "--json").stdout)
    assert [(g["client"], g["account"], g["is_default"]) for g in every] == [
        ("a", "alice@example.test", True),
        ("a", "bob@example.test", False),
        ("b", "carol@example.test", True),
    ]
    only_b = json.loads(cli("grant", "list", "--client", "b", "--json").stdout)
    assert [g["id"] for g in only_b] == [carol.pk]
    shown = json.loads(cli("grant", "show", str(alice.pk), "--json").stdout)
    assert shown["state"] == "authorized" and shown["client_id"] == alice.client_id
    assert datetime.fromisoformat(shown["expires_at"]) == alice.expires_at
    text = cli("grant", "list").stdout + cli("grant", "show", str(bob.pk)).stdout
    assert "bob@example.test" in text and "unauthorized" in text
    for output in (json.dumps(every), json.dumps(shown), text):
        assert "canary-" not in output
    with pytest.raises(CommandError, match="No OAuth client named 'nope'"):
        cli("grant", "list", "--client", "nope")


@pytest.mark.parametrize(
    "args", [("show", "999999"), ("refresh", "999999"), ("token", "999999"),
             ("set-default", "999999"), ("delete", "999999", "--yes")]
)  # fmt: skip
def test_unknown_id(cli, args) -> None:
    with pytest.raises(CommandError, match=r"^No grant 999999\.$"):
        cli("grant", *args)


def test_set_default(cli, two_clients) -> None:
    _, bob, _ = two_clients
    done = cli("grant", "set-default", str(bob.pk))
    assert done.stdout == f"Grant {bob.pk} (bob@example.test) is now the default of a.\n"
    defaults = dict(Grant.objects.filter(is_default=True).values_list("client__name", "account"))
    assert defaults == {"a": "bob@example.test", "b": "carol@example.test"}
    assert AuditEvent.objects.filter(action="grant.default_set").count() == 1
    cli("grant", "set-default", str(bob.pk))  # already the default: nothing to record
    assert AuditEvent.objects.filter(action="grant.default_set").count() == 1


def test_delete(cli, two_clients) -> None:
    alice, bob, carol = two_clients
    with pytest.raises(CommandError, match="Add --yes to confirm"):
        cli("grant", "delete", str(bob.pk))
    with pytest.raises(CommandError, match="Nothing was deleted"):
        cli("grant", "delete", str(bob.pk), stdin="\n", tty=True)
    deleted = cli("grant", "delete", str(bob.pk), stdin="yes\n", tty=True)
    assert f"Delete grant {bob.pk} (a: bob@example.test) and its tokens? [y/N]" in deleted.stderr
    assert not Grant.objects.filter(pk=bob.pk).exists()
    cli("grant", "delete", str(carol.pk), "--yes")
    assert list(Grant.objects.values_list("pk", flat=True)) == [alice.pk]
    assert AuditEvent.objects.filter(action="grant.deleted").count() == 2


def test_delete_refused_while_a_mailbox_uses_the_grant(cli, two_clients) -> None:
    alice, *_ = two_clients
    Mailbox.objects.create(
        name="support",
        host="h",
        port=993,
        username="alice@example.test",
        oauth_client=alice.client,
        grant=alice,
    )
    with pytest.raises(CommandError, match=r"Mailboxes use this grant \(support\)"):
        cli("grant", "delete", str(alice.pk), "--yes")
    assert Grant.objects.filter(pk=alice.pk).exists()


def test_a_grant_that_needs_validation(cli, two_clients) -> None:
    alice, bob, _ = two_clients
    Grant.objects.filter(pk=alice.pk).update(
        state="reauthorization_required", last_error="invalid_grant"
    )
    for action in ("refresh", "token"):
        with pytest.raises(CommandError, match="needs to be validated again"):
            cli("grant", action, str(alice.pk))
    with pytest.raises(CommandError, match="is not authorized yet"):
        cli("grant", "token", str(bob.pk))


@pytest.mark.integration
def test_refresh_and_token_at_the_real_provider(cli, oidc, mail_grant) -> None:
    client = mail_grant.client
    before = mail_grant.tokens()
    refreshed = cli("grant", "refresh", str(mail_grant.pk)).stdout
    assert refreshed.startswith(f"Refreshed grant {mail_grant.pk} of {client.name}")
    after = Grant.objects.get(pk=mail_grant.pk)
    assert after.refresh_count == 1 and after.tokens().access_token != before.access_token
    token = cli("grant", "token", str(mail_grant.pk)).stdout.strip()
    assert token == after.tokens().access_token  # fresh enough: not refreshed again
    data = json.loads(cli("grant", "token", str(mail_grant.pk), "--json").stdout)
    assert set(data) == {"access_token", "token_type", "expires_at", "scope"}
    assert data["token_type"].lower() == "bearer" and "mail" in data["scope"].split()
    secret = client.client_secret.reveal()
    info = oidc.introspect(data["access_token"], client_id=client.client_id, client_secret=secret)
    assert info["active"] is True
    events = AuditEvent.objects.filter(action="grant.token_issued")
    assert set(events.values_list("actor", flat=True)) == {"cli"} and events.count() == 2
