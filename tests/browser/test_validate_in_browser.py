"""The whole Validate as an administrator does it, in Chromium: add a generic client in the
admin, save, read the redirect URI, press Validate, sign in and consent at the provider, land
back authorized. Afterwards the raw database holds neither the secret nor any token."""

import subprocess
from pathlib import Path

import pytest
from django.db import connection

from mailgrant.oauth.models import Grant, OAuthClient
from tests.servers.oidc import ACCOUNTS

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

SECRET = "canary-browser-secret-4d2f9a"


def _login_admin(page, base: str, django_user_model) -> None:
    django_user_model.objects.create_superuser("admin", "admin@example.test", "admin-pass-1234")
    page.goto(f"{base}/admin/login/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "admin-pass-1234")
    page.click("input[type=submit]")
    page.wait_for_url(f"{base}/admin/")


def test_validate_a_generic_client_in_a_real_browser(
    page, live_server, settings, oidc, django_user_model
):
    base = live_server.url
    settings.MAILGRANT_BASE_URL = base
    _login_admin(page, base, django_user_model)

    page.goto(f"{base}/admin/oauth/oauthclient/add/")
    assert not page.is_visible("text=Redirect URI")
    page.fill("#id_name", "Support (test provider)")
    page.select_option("#id_provider", "generic")
    assert page.is_visible("#id_issuer") and not page.is_visible("#id_tenant")
    assert not page.is_visible("#id_login_button_caption")  # user-type fields hidden
    page.select_option("#id_type", "user")
    assert page.is_visible("#id_login_button_caption")
    page.select_option("#id_type", "mailbox")
    page.fill("#id_client_id", "browser-client")
    page.fill("#id_client_secret", SECRET)
    page.fill("#id_issuer", oidc.issuer)
    page.fill("#id_scope", "openid email offline_access mail")
    page.click("input[name=_continue]")
    page.wait_for_selector("#mailgrant-redirect-uri")

    client = OAuthClient.objects.get(name="Support (test provider)")
    redirect_uri = page.input_value("#mailgrant-redirect-uri")
    assert redirect_uri == f"{base}/oauth/callback/{client.pk}/"
    assert SECRET not in page.content()
    page.click("button[data-copy]")
    assert page.text_content("button[data-copy]") == "Copied"

    # The provider's administrator registers the redirect URI shown on the page.
    oidc.register_client(
        client_id="browser-client", client_secret=SECRET, redirect_uris=[redirect_uri]
    )

    page.click("#mailgrant-validate button[type=submit]")
    page.wait_for_url(f"{oidc.issuer}/interaction/**")
    page.fill("input[name=login]", "alice@example.test")
    page.fill("input[name=password]", ACCOUNTS["alice@example.test"]["password"])
    page.click("button[type=submit]")
    page.wait_for_selector("text=Continue")
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/admin/oauth/oauthclient/{client.pk}/change/")
    assert "Authorized as alice@example.test" in page.text_content(".messagelist")
    assert "Authorized" in page.text_content("#grants-group")

    grant = Grant.objects.get(client=client)
    tokens = grant.tokens()
    secrets = [SECRET, tokens.access_token, tokens.refresh_token, tokens.id_token]
    assert all(secrets)
    html = page.content()
    for secret in secrets:
        assert secret not in html

    # The raw database files (WAL included) hold none of them in plain text. Read by another
    # process: closing a descriptor of the file here would drop SQLite's POSIX locks held by
    # this process's other connections (the live server's).
    db = Path(connection.settings_dict["NAME"])
    files = [str(p) for p in db.parent.glob(db.name + "*")]
    raw = subprocess.run(["cat", *files], capture_output=True, check=True).stdout
    assert b"browser-client" in raw  # the files read are the right ones
    for secret in secrets:
        assert secret.encode() not in raw, "a secret is stored in plain text"
