"""The administrator's commands as a real process: exit status 0 (done), 1 (failed: one line
on stderr) and 2 (usage); secrets through stdin; `client validate --wait` against the real
provider, finished in another "browser"."""

import json
import subprocess
import threading
from urllib.parse import urlsplit

import pytest
from django.test import Client

from mailgrant.mailboxes.models import Mailbox
from mailgrant.oauth.models import Grant, OAuthClient
from tests.cli.conftest import MAILGRANT, assert_failed, assert_usage
from tests.servers.oidc import ACCOUNTS

pytestmark = pytest.mark.django_db(transaction=True)

SECRET = "canary-cli-process-secret-8b2e"


def test_client_lifecycle_exit_codes(mailgrant) -> None:
    add = ("client", "add", "--name", "G", "--provider", "google", "--client-id", "1")
    added = mailgrant(*add, "--client-secret-stdin", "--json", input=SECRET + "\n")
    assert added.returncode == 0, added.stderr
    data = json.loads(added.stdout)  # JSON and nothing else on stdout
    assert data["has_client_secret"] is True and added.stderr == ""
    assert OAuthClient.objects.get().client_secret.reveal() == SECRET

    assert_failed(mailgrant(*add), "An OAuth client named 'G' exists already.")
    assert_failed(
        mailgrant("client", "update", "G", "--proxy", "nonsense"), "Invalid: proxy: A proxy must"
    )
    assert_failed(mailgrant("client", "show", "nope"), "No OAuth client named 'nope'.")
    assert_failed(mailgrant("client", "delete", "G"), "Add --yes to confirm")
    assert_failed(mailgrant("client", "token", "G"), "not authorized yet")

    # Usage: argparse's own message and status 2.
    assert_usage(mailgrant("client"))
    assert_usage(mailgrant("client", "add", "--name", "x"), "--provider", "--client-id")
    assert_usage(mailgrant(*add, "--provider", "yahoo"), "invalid choice: 'yahoo'")
    # No flag takes a secret itself; a try is refused without echoing it.
    tried = mailgrant(*add, "--client-secret", SECRET)
    assert_usage(tried, "ambiguous option: --client-secret")
    assert SECRET not in tried.stderr
    assert_usage(
        mailgrant(*add, "--client-secret-stdin", "--client-secret-file", "x"), "not allowed"
    )
    assert_usage(mailgrant("client", "token", "G", "--min-valid", "-5"), "between 0 and 86400")
    assert_usage(mailgrant("grant", "show", "one"), "invalid int value")

    for step in (("update", "G", "--scope", "mail"), ("disable", "G"), ("delete", "G", "--yes")):
        done = mailgrant("client", *step)
        assert done.returncode == 0 and done.stderr == "", done.stderr
    assert not OAuthClient.objects.exists()


def test_grant_and_mailbox_exit_codes(mailgrant, make_client, make_grant) -> None:
    grant = make_grant(make_client(name="G"), access_token="canary-at-exit-codes")
    listed = mailgrant("grant", "list", "--json")
    assert listed.returncode == 0 and json.loads(listed.stdout)[0]["id"] == grant.pk
    assert "canary-at-exit-codes" not in listed.stdout
    assert mailgrant("grant", "set-default", str(grant.pk)).returncode == 0
    assert_failed(mailgrant("grant", "token", "999999"), "No grant 999999.")
    assert_failed(mailgrant("grant", "delete", str(grant.pk)), "Add --yes")

    mailbox = ("mailbox", "add", "--name", "m", "--host", "h", "--port", "993", "--username", "u")
    added = mailgrant(*mailbox, "--auth-method", "password", "--password-stdin", input=SECRET)
    assert added.returncode == 0, added.stderr
    shown = mailgrant("mailbox", "show", "m", "--json")
    assert json.loads(shown.stdout)["has_password"] is True and SECRET not in shown.stdout
    assert_failed(mailgrant(*mailbox, "--oauth-client", "G"), "A mailbox named 'm' exists")
    assert_failed(
        mailgrant("mailbox", "update", "m", "--protocol", "smtp"), "direction: SMTP is for"
    )
    assert_failed(mailgrant("mailbox", "delete", "nope", "--yes"), "No mailbox named 'nope'.")
    tried = mailgrant("mailbox", "update", "m", "--password", SECRET)
    assert_usage(tried, "ambiguous option: --password")
    assert SECRET not in tried.stderr
    assert_usage(mailgrant("mailbox", "update", "m", "--enabled", "--disabled"), "not allowed")
    assert mailgrant("mailbox", "delete", "m", "--yes").returncode == 0


def test_unexpected_failure_is_one_line_too(mailgrant, tmp_path) -> None:
    broken = dict(mailgrant.env, MAILGRANT_DATABASE_URL=f"sqlite:///{tmp_path}/no/such/db")
    result = subprocess.run(
        [MAILGRANT, "client", "list"], env=broken, capture_output=True, text=True, timeout=60
    )
    assert_failed(result, "Unexpected error (OperationalError)")


@pytest.mark.integration
@pytest.mark.parametrize("approve", [True, False])
def test_validate_wait_in_any_browser(mailgrant, oidc, oidc_client, approve) -> None:
    client = oidc_client(name="generic")
    command = ["client", "validate", "generic", "--wait", "--login-hint", "alice@example.test"]
    process = subprocess.Popen(
        [MAILGRANT, *command],
        env=mailgrant.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    timer = threading.Timer(120, process.kill)  # a hung command fails the test, not the run
    timer.start()
    try:
        url = process.stdout.readline().strip()
        assert urlsplit(url).path.endswith("/auth"), url
        redirect = oidc.login_headless(
            url,
            login="alice@example.test",
            password=ACCOUNTS["alice@example.test"]["password"],
            approve=approve,
        )
        # Any browser, signed in to nothing here: the state alone finishes a command-line start.
        landed = Client().get(redirect[redirect.index("/oauth/") :])
        stdout, stderr = process.communicate()
    finally:
        timer.cancel()
        process.kill()
    assert "Open this URL in any browser" in stderr
    if approve:
        assert landed.status_code == 200
        grant = Grant.objects.get(client=client)
        assert process.returncode == 0, stderr
        assert stdout == f"Authorized as alice@example.test (grant {grant.pk}).\n"
        assert grant.state == "authorized" and grant.tokens().refresh_token
    else:
        assert landed.status_code == 400
        assert process.returncode == 1
        assert "The provider refused the authorization (access_denied" in stderr
        assert not Grant.objects.filter(state="authorized").exists()
    secret = OAuthClient.objects.get(pk=client.pk).client_secret.reveal()
    assert "Traceback" not in stderr and secret not in stdout + stderr


@pytest.mark.integration
def test_mailbox_authorize_wait(mailgrant, oidc, oidc_client) -> None:
    client = oidc_client(name="generic")
    added = mailgrant("mailbox", "add", "--name", "alice", "--host", "127.0.0.1", "--port", "1",
                      "--username", "alice@example.test", "--oauth-client", "generic")  # fmt: skip
    assert added.returncode == 0, added.stderr
    process = subprocess.Popen(
        [MAILGRANT, "mailbox", "authorize", "alice", "--wait"],
        env=mailgrant.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    timer = threading.Timer(120, process.kill)
    timer.start()
    try:
        url = process.stdout.readline().strip()
        assert "login_hint=alice%40example.test" in url
        redirect = oidc.login_headless(
            url, login="alice@example.test", password=ACCOUNTS["alice@example.test"]["password"]
        )
        assert Client().get(redirect[redirect.index("/oauth/") :]).status_code == 200
        stdout, stderr = process.communicate()
    finally:
        timer.cancel()
        process.kill()
    assert process.returncode == 0, stderr
    grant = Mailbox.objects.get().grant
    assert grant.client_id == client.pk and grant.state == "authorized"
    assert stdout.endswith(f"Authorized as alice@example.test (grant {grant.pk}).\n")
