"""Canary sweep: known secret and token values never appear in logs (DEBUG on), admin HTML,
error pages, audit rows or command output."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse

from mailgrant.common.models import AuditEvent
from mailgrant.oauth import protocol
from mailgrant.oauth.models import Grant
from tests.servers.oidc import ACCOUNTS

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
MAILGRANT = str(Path(sys.executable).with_name("mailgrant"))
CANARY_SECRET = "canary-client-secret-3b7e51d0"


def _assert_clean(text: str, canaries: list[str], where: str) -> None:
    for canary in canaries:
        assert canary not in text, f"a secret leaked into {where}"


def test_commands_and_debug_logs_never_show_secrets(oidc, tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAILGRANT_", "DJANGO_"))}
    env.update(
        MAILGRANT_HOME=str(tmp_path),
        PYTHONPATH=str(ROOT),
        MAILGRANT_DEBUG="true",
        MAILGRANT_LOG_LEVEL="DEBUG",
        MAILGRANT_DATABASE_URL=f"sqlite:///{tmp_path}/c.db",
    )

    def run(*args: str, module: bool = False) -> subprocess.CompletedProcess:
        argv = (
            [sys.executable, "-m", "tests.oauth.token_worker", *args]
            if module
            else [MAILGRANT, *args]
        )
        return subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)

    assert run("migrate", "--noinput").returncode == 0
    alice = "alice@example.test"
    setup = run(
        "setup", oidc.issuer, alice, ACCOUNTS[alice]["password"], CANARY_SECRET, module=True
    )
    assert setup.returncode == 0, setup.stderr
    grant = json.loads(setup.stdout.strip().splitlines()[-1])
    tokens = json.loads(run("reveal", str(grant["grant"]), module=True).stdout)
    refresh = run("client", "refresh", grant["name"])
    assert refresh.returncode == 0, refresh.stderr
    after = json.loads(run("reveal", str(grant["grant"]), module=True).stdout)
    canaries = [
        CANARY_SECRET,
        tokens["access_token"],
        tokens["refresh_token"],
        tokens["id_token"],
        after["refresh_token"],
        after["access_token"],
    ]
    assert " DEBUG httpcore" in setup.stderr  # the logs really are verbose (SQL is never logged)
    outputs = {
        "setup (stderr: DEBUG logs)": setup.stderr,
        "client refresh": refresh.stdout + refresh.stderr,
    }
    for args in (
        ["client", "list"],
        ["client", "list", "--json"],
        ["vault", "rotate"],
        ["client", "refresh", "no-such-client"],
        ["check", "--deploy"],
    ):
        result = run(*args)
        outputs[" ".join(args)] = result.stdout + result.stderr
    # A refused refresh (the provider no longer knows the client's secret) logs a warning.
    oidc.register_client(
        client_id=grant["client_id"],
        client_secret="rotated-at-provider",
        redirect_uris=["http://127.0.0.1:1/cb"],
    )
    failed = run("client", "refresh", grant["name"])
    assert failed.returncode == 1 and "invalid_client" in failed.stderr
    outputs["refused refresh"] = failed.stdout + failed.stderr
    token_cmd = run("client", "token", grant["name"])
    outputs["client token stderr"] = token_cmd.stderr
    for where, text in outputs.items():
        _assert_clean(text, canaries, where)


@pytest.mark.django_db
def test_admin_pages_error_pages_and_audit_never_show_secrets(
    admin_client, settings, oidc, oidc_client, validate_headless, monkeypatch, django_user_model
) -> None:
    settings.DEBUG = True
    client = oidc_client(client_secret=CANARY_SECRET)
    result = validate_headless(client)
    tokens = result.grant.tokens()
    canaries = [CANARY_SECRET, tokens.access_token, tokens.refresh_token, tokens.id_token]
    pages = [
        reverse("admin:oauth_oauthclient_changelist"),
        reverse("admin:oauth_oauthclient_change", args=[client.pk]),
        reverse("admin:oauth_oauthclient_history", args=[client.pk]),
        reverse("admin:oauth_grant_changelist"),
        reverse("admin:oauth_grant_change", args=[result.grant.pk]),
        reverse("admin:common_auditevent_changelist"),
    ]
    for url in pages:
        response = admin_client.get(url)
        assert response.status_code == 200, url
        _assert_clean(response.content.decode(), canaries, url)

    # A crash in the middle of a Validate, with DEBUG's technical error page.
    def explode(**kwargs):
        raise RuntimeError("token endpoint exploded")

    monkeypatch.setattr(protocol, "exchange_code", explode)
    browser = Client(raise_request_exception=False)
    browser.force_login(django_user_model.objects.get(username="admin"))
    start = browser.post(reverse("admin:oauth_oauthclient_validate", args=[client.pk]))
    redirect = oidc.login_headless(
        start["Location"],
        login="alice@example.test",
        password=ACCOUNTS["alice@example.test"]["password"],
    )
    error_page = browser.get(redirect[redirect.index("/oauth/") :])
    assert error_page.status_code == 500
    assert "token endpoint exploded" in error_page.content.decode()
    _assert_clean(error_page.content.decode(), canaries, "the DEBUG error page")

    for event in AuditEvent.objects.all():
        _assert_clean(f"{event.message} {event.target_repr}", canaries, "the audit log")
    assert Grant.objects.get(pk=result.grant.pk).tokens().access_token == tokens.access_token
