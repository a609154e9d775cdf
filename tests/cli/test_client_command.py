"""`mailgrant client ...` in this process: every subcommand over the services the API uses."""

import json
from pathlib import Path

import pytest
from django.core.management.base import CommandError

from mailgrant.common.models import AuditEvent
from mailgrant.mailboxes.models import Mailbox
from mailgrant.oauth.models import Grant, OAuthClient, PendingAuthorization

pytestmark = pytest.mark.django_db

SECRET = "canary-cli-client-secret-3f9a"
GOOGLE = ("client", "add", "--name", "Google support", "--provider", "google", "--client-id", "1")


def _secret_file(tmp_path: Path, text: str = SECRET + "\n") -> str:
    path = tmp_path / "secret"
    path.write_text(text)
    return str(path)


def test_add_from_a_file_show_and_list(cli, tmp_path) -> None:
    added = cli(*GOOGLE, "--client-secret-file", _secret_file(tmp_path))
    assert "Added OAuth client Google support" in added.stdout
    assert "Redirect URI to register at the provider: http://testserver/oauth/callback/" in (
        added.stdout
    )
    client = OAuthClient.objects.get()
    assert client.client_secret.reveal() == SECRET  # without the file's line ending
    created = AuditEvent.objects.get(action="oauth_client.created")
    assert (created.actor, created.user) == ("cli", None)  # who acted: the command line

    shown = json.loads(cli("client", "show", "Google support", "--json").stdout)
    assert shown["has_client_secret"] is True and "client_secret" not in shown
    assert shown["client_id"] == "1" and shown["provider"] == "google"
    assert shown["redirect_uri"] == f"http://testserver/oauth/callback/{client.pk}/"
    assert shown["grants"] == []
    text = cli("client", "show", "Google support").stdout
    assert "has_client_secret:" in text and "True" in text and "scope_separator:" in text
    assert "(run validate)" in text

    cli("client", "add", "--name", "Azure", "--provider", "azure", "--client-id", "a", "--type",
        "user", "--status", "disabled")  # fmt: skip
    every = json.loads(cli("client", "list", "--json").stdout)
    assert [c["name"] for c in every] == ["Azure", "Google support"]
    assert every[1]["grant_state"] == "unauthorized"
    for flags, names in [
        (("--provider", "google"), ["Google support"]),
        (("--type", "user"), ["Azure"]),
        (("--status", "enabled"), ["Google support"]),
        (("--provider", "azure", "--status", "enabled"), []),
    ]:
        found = json.loads(cli("client", "list", *flags, "--json").stdout)
        assert [c["name"] for c in found] == names, flags
    assert "Google support" in cli("client", "list").stdout


def test_secret_from_stdin_and_dash(cli) -> None:
    cli(*GOOGLE, "--client-secret-stdin", stdin=SECRET + "\r\n")
    assert OAuthClient.objects.get().client_secret.reveal() == SECRET
    cli("client", "update", "Google support", "--client-secret-file", "-", stdin="second-secret")
    assert OAuthClient.objects.get().client_secret.reveal() == "second-secret"
    event = AuditEvent.objects.filter(action="oauth_client.updated").get()
    assert event.message == "client secret replaced"


@pytest.mark.parametrize(
    ("content", "error"),
    [("", "is empty"), ("\n", "is empty"), ("one\ntwo\n", "more than one line")],
)
def test_bad_secret_input_changes_nothing(cli, tmp_path, content, error) -> None:
    with pytest.raises(CommandError, match=error):
        cli(*GOOGLE, "--client-secret-file", _secret_file(tmp_path, content))
    with pytest.raises(CommandError, match=error):
        cli(*GOOGLE, "--client-secret-stdin", stdin=content)
    assert not OAuthClient.objects.exists()


def test_unreadable_secret_file(cli, tmp_path) -> None:
    with pytest.raises(CommandError, match=r"Cannot read the client secret from .*missing"):
        cli(*GOOGLE, "--client-secret-file", str(tmp_path / "missing"))
    with pytest.raises(CommandError, match="Cannot read the client secret"):
        cli(*GOOGLE, "--client-secret-file", str(tmp_path))  # a folder
    assert not OAuthClient.objects.exists()


def test_user_type_fields(cli) -> None:
    cli(
        "client", "add", "--name", "SSO", "--provider", "generic", "--client-id", "sso",
        "--type", "user", "--authorize-url", "https://idp.example/authorize",
        "--token-url", "https://idp.example/token", "--scope", "openid,email",
        "--scope-separator", ",", "--userinfo-endpoint", "https://idp.example/userinfo",
        "--user-data-source", "endpoint", "--username-attribute", "preferred_username",
        "--user-fields", '{"email": "email", "first_name": "given_name"}',
        "--user-create-expression", 'claims.email.endsWith("@example.test")',
        "--login-button-caption", "Sign in with IdP", "--login-button-icon", "key",
        "--proxy", "http://proxy.example:3128", "--no-verify-ssl", "--tenant", "",
    )  # fmt: skip
    client = OAuthClient.objects.get()
    assert client.type == "user" and client.sign_in.user_data_source == "endpoint"
    assert client.sign_in.user_fields == {"email": "email", "first_name": "given_name"}
    assert client.scope_separator == "," and client.verify_ssl is False
    assert client.sign_in.login_button_caption == "Sign in with IdP" and not client.client_secret
    shown = json.loads(cli("client", "show", "SSO", "--json").stdout)
    assert shown["user_create_expression"] == 'claims.email.endsWith("@example.test")'
    assert shown["has_client_secret"] is False


def test_update_changes_only_what_is_given(cli, tmp_path) -> None:
    cli(*GOOGLE, "--client-secret-file", _secret_file(tmp_path), "--scope", "a b")
    before = json.loads(cli("client", "show", "Google support", "--json").stdout)
    # Verify SSL off changes where the secret goes: the secret is given again with it.
    secret = ("--client-secret-file", _secret_file(tmp_path))
    updated = cli("client", "update", "Google support", "--no-verify-ssl", *secret, "--json")
    after = json.loads(updated.stdout)
    changed = {k for k in after if after.get(k) != before.get(k)} - {"updated_at", "grants"}
    changed.discard("notice")
    assert changed == {"verify_ssl"}
    assert OAuthClient.objects.get().client_secret.reveal() == SECRET  # kept
    cli("client", "update", "Google support", "--verify-ssl", "--scope", "", "--name", "Renamed")
    client = OAuthClient.objects.get()
    assert (client.name, client.verify_ssl, client.scope) == ("Renamed", True, "")
    with pytest.raises(CommandError, match="Nothing to change"):
        cli("client", "update", "Renamed")


@pytest.mark.parametrize(
    ("flags", "field"),
    [
        (("--proxy", "not a proxy"), "proxy: A proxy must be a URL"),
        (("--provider", "generic"), "issuer: Enter the issuer URL"),
        (("--provider", "generic", "--issuer", "http://127.0.0.1:9/"), "issuer: OpenID discovery"),
        (("--token-url", "no url"), "token_url: Enter a valid URL"),
        (("--user-fields", "{bad"), "user_fields: not JSON"),
        (("--user-fields", '["email"]'), "user_fields: expected a JSON object"),
        (("--client-id", ""), "client_id: This field cannot be blank"),
        (("--name", "x" * 201), "name: Ensure this value has at most 200"),
    ],
)
def test_wrong_values_name_the_field_and_change_nothing(cli, flags, field) -> None:
    with pytest.raises(CommandError, match=f"^Invalid: .*{field}"):
        cli(*GOOGLE, *flags)
    assert not OAuthClient.objects.exists()
    cli(*GOOGLE)
    with pytest.raises(CommandError, match=f"^Invalid: .*{field}"):
        cli("client", "update", "Google support", *flags)
    assert OAuthClient.objects.get().provider == "google"


def test_duplicate_names(cli) -> None:
    cli(*GOOGLE)
    with pytest.raises(CommandError, match="An OAuth client named 'Google support' exists"):
        cli(*GOOGLE)
    cli("client", "add", "--name", "Other", "--provider", "google", "--client-id", "2")
    with pytest.raises(CommandError, match="An OAuth client named 'Google support' exists"):
        cli("client", "update", "Other", "--name", "Google support")
    assert OAuthClient.objects.count() == 2


@pytest.mark.parametrize(
    "args",
    [
        ("show", "nope"),
        ("update", "nope", "--scope", "x"),
        ("delete", "nope", "--yes"),
        ("enable", "nope"),
        ("disable", "nope"),
        ("validate", "nope"),
        ("refresh", "nope"),
        ("token", "nope"),
        ("grants", "nope"),
    ],
)
def test_unknown_name(cli, args) -> None:
    with pytest.raises(CommandError, match=r"^No OAuth client named 'nope'\.$"):
        cli("client", *args)


def test_enable_disable(cli, make_client) -> None:
    client = make_client(name="c")
    assert cli("client", "disable", "c").stdout == "Disabled c.\n"
    assert OAuthClient.objects.get().status == "disabled"
    with pytest.raises(CommandError, match="This client is disabled"):
        cli("client", "validate", "c")
    assert cli("client", "enable", "c").stdout == "Enabled c.\n"
    assert OAuthClient.objects.get().status == "enabled"
    events = AuditEvent.objects.filter(target_id=str(client.pk)).order_by("id")
    actions = list(events.values_list("action", flat=True))
    assert actions[-2:] == ["oauth_client.disabled", "oauth_client.enabled"]


def test_delete_asks_first(cli, make_client, make_grant) -> None:
    make_grant(make_client(name="c"))
    with pytest.raises(CommandError, match="Add --yes to confirm"):
        cli("client", "delete", "c")  # stdin is not a terminal
    with pytest.raises(CommandError, match="Nothing was deleted"):
        cli("client", "delete", "c", stdin="n\n", tty=True)
    assert OAuthClient.objects.exists()
    deleted = cli("client", "delete", "c", stdin="y\n", tty=True)
    assert "Delete OAuth client c and its 1 grant(s)? [y/N]" in deleted.stderr
    assert "Deleted OAuth client c." in deleted.stdout
    assert not OAuthClient.objects.exists() and not Grant.objects.exists()
    make_client(name="d")
    cli("client", "delete", "d", "--yes")
    assert not OAuthClient.objects.exists()
    assert AuditEvent.objects.filter(action="oauth_client.deleted").count() == 2


def test_delete_refused_while_a_mailbox_uses_the_client(cli, make_client) -> None:
    client = make_client(name="c")
    Mailbox.objects.create(
        name="support", host="h", port=993, username="u@example.test", oauth_client=client
    )
    with pytest.raises(CommandError, match=r"Mailboxes use this client \(support\)"):
        cli("client", "delete", "c", "--yes")
    assert OAuthClient.objects.exists()


def test_validate_prints_the_url_alone(cli, make_client) -> None:
    make_client(name="c")
    started = cli("client", "validate", "c", "--login-hint", "bob@example.test")
    url = started.stdout.strip()
    assert started.stdout == url + "\n"
    assert url.startswith("https://provider.invalid/authorize?")
    assert "login_hint=bob%40example.test" in url and "code_challenge=" in url
    assert "Open this URL in any browser" in started.stderr
    pending = PendingAuthorization.objects.get()
    assert pending.purpose == "cli" and pending.outcome == "pending"
    assert pending.expected_account == "bob@example.test"


def test_validate_and_token_name_a_grant_of_this_client(cli, make_client, make_grant) -> None:
    make_client(name="c")
    other = make_grant(make_client(name="other"))
    for action in ("validate", "token"):
        with pytest.raises(CommandError, match=f"Grant {other.pk} belongs to client other"):
            cli("client", action, "c", "--grant", str(other.pk))
        with pytest.raises(CommandError, match="No grant 999999"):
            cli("client", action, "c", "--grant", "999999")


def test_not_authorized_yet(cli, make_client) -> None:
    make_client(name="c")
    for action in ("refresh", "token"):
        with pytest.raises(CommandError, match="Client c is not authorized yet: run validate"):
            cli("client", action, "c")


@pytest.mark.integration
def test_refresh_token_and_grants_at_the_real_provider(cli, oidc, mail_grant) -> None:
    client = mail_grant.client
    refreshed = cli("client", "refresh", client.name)
    assert f"Refreshed grant {mail_grant.pk} of {client.name} (alice@example.test)" in (
        refreshed.stdout
    )
    token = cli("client", "token", client.name, "--min-valid", "60").stdout
    access_token = token.strip()
    assert token == access_token + "\n"  # alone: TOKEN=$(mailgrant client token NAME)
    secret = client.client_secret.reveal()
    info = oidc.introspect(access_token, client_id=client.client_id, client_secret=secret)
    assert info["active"] is True
    as_json = json.loads(
        cli("client", "token", client.name, "--grant", str(mail_grant.pk), "--json").stdout
    )
    assert set(as_json) == {"access_token", "token_type", "expires_at", "scope"}
    assert AuditEvent.objects.filter(action="grant.token_issued", actor="cli").count() == 2
    grants = json.loads(cli("client", "grants", client.name, "--json").stdout)
    assert [(g["id"], g["account"], g["state"], g["is_default"]) for g in grants] == [
        (mail_grant.pk, "alice@example.test", "authorized", True)
    ]
    assert "alice@example.test" in cli("client", "grants", client.name).stdout
    shown = json.loads(cli("client", "show", client.name, "--json").stdout)
    assert shown["grants"][0]["id"] == mail_grant.pk


@pytest.mark.integration
def test_canary_secret_and_tokens_in_no_output(cli, oidc, oidc_client, validate_headless) -> None:
    client = oidc_client(name="canary", client_secret=SECRET)
    grant = validate_headless(client).grant
    tokens = grant.tokens()
    canaries = [SECRET, tokens.refresh_token, tokens.id_token, tokens.access_token]
    outputs = [
        cli("client", "list"),
        cli("client", "list", "--json"),
        cli("client", "show", "canary"),
        cli("client", "show", "canary", "--json"),
        cli("client", "update", "canary", "--client-secret-stdin", "--json", stdin=SECRET),
        cli("client", "update", "canary", "--scope", "openid email offline_access mail"),
        cli("client", "grants", "canary", "--json"),
        cli("client", "refresh", "canary"),
        cli("client", "validate", "canary"),
        cli("client", "disable", "canary"),
        cli("client", "enable", "canary"),
        cli("grant", "list", "--json"),
        cli("grant", "show", str(grant.pk), "--json"),
        cli("grant", "refresh", str(grant.pk)),
    ]
    refreshed = Grant.objects.get(pk=grant.pk).tokens()
    canaries += [refreshed.access_token, refreshed.refresh_token]
    for failing in (
        ("client", "add", "--name", "canary", "--provider", "generic", "--client-id", "x"),
        ("client", "update", "canary", "--proxy", f"http://{SECRET}@"),
    ):
        with pytest.raises(CommandError) as caught:
            cli(*failing, "--client-secret-stdin", stdin=SECRET)
        outputs.append(type("Failure", (), {"stdout": str(caught.value), "stderr": ""})())
    for output in outputs:
        for canary in canaries:
            assert canary not in output.stdout + output.stderr
    for event in AuditEvent.objects.all():
        for canary in canaries:
            assert canary not in f"{event.actor} {event.target_repr} {event.message}"


def test_related_ldaps_by_name(cli, db) -> None:
    from mailgrant.directory.models import LdapDirectory

    LdapDirectory.objects.create(
        name="Corp", server_uri="ldap://127.0.0.1:1", base_dn="dc=example,dc=test"
    )
    cli(
        "client",
        "add",
        "--name",
        "Corp sign-in",
        "--provider",
        "azure",
        "--type",
        "user",
        "--client-id",
        "00000000-1111-2222-3333-444444444444",
        "--related-ldap",
        "Corp",
    )
    client = OAuthClient.objects.get(name="Corp sign-in")
    assert [d.name for d in client.sign_in.related_ldaps.all()] == ["Corp"]
    with pytest.raises(CommandError, match="No LDAP directory named 'Nope'"):
        cli("client", "update", "Corp sign-in", "--related-ldap", "Nope")
    assert client.sign_in.related_ldaps.count() == 1
    cli("client", "update", "Corp sign-in", "--related-ldap", "")
    assert client.sign_in.related_ldaps.count() == 0
