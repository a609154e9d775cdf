"""Where a client's secrets go cannot be changed to pull them out: a new token URL (or issuer,
proxy, verify_ssl off...) clears the stored client secret unless the same change gives it again,
and drops every grant's tokens, so a forced refresh sends neither to the new host. Against the
real oidc-provider, with the attacker's token endpoint a listener on a real socket."""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from mailgrant.common.models import AuditEvent
from mailgrant.oauth.models import Grant, OAuthClient
from tests.oauth.client_form import client_form
from tests.servers.fakes import FakeProvider

pytestmark = pytest.mark.django_db

SECRET = "canary-retarget-secret-41f7"
EVIL_TOKENS = {
    "access_token": "at-minted-by-attacker",
    "token_type": "Bearer",
    "expires_in": 3600,
    "refresh_token": "rt-minted-by-attacker",
}


@pytest.fixture
def validated(oidc_client: Any, validate_headless: Any) -> tuple[OAuthClient, str]:
    """A client at the real provider, validated as alice: the client and its refresh token."""
    client = oidc_client(client_secret=SECRET)
    grant = validate_headless(client).grant
    refresh_token = grant.tokens().refresh_token
    assert refresh_token
    return client, refresh_token


def _leaked(listener: FakeProvider, *secrets: str) -> list[str]:
    sent = "".join(
        f"{r.method} {r.path} {r.headers} {r.body.decode(errors='replace')}"
        for r in listener.requests
    )
    import base64

    found = []
    for secret in secrets:
        if secret in sent or base64.b64encode(secret.encode()).decode()[:16] in sent:
            found.append(secret)
    return found


def _attacker() -> FakeProvider:
    listener = FakeProvider()
    listener.answer("/token", EVIL_TOKENS)
    return listener


def test_api_patch_token_url_then_refresh_sends_no_secret(api, validated) -> None:
    client, refresh_token = validated
    with _attacker() as listener:
        patched = api.patch(f"/oauth-clients/{client.pk}", {"token_url": f"{listener.url}/token"})
        assert patched.status_code == 200, patched.content
        assert patched.json()["has_client_secret"] is False
        assert "validated again" in patched.json()["notice"]
        refreshed = api.post(f"/oauth-clients/{client.pk}/refresh")
        assert refreshed.status_code == 422, refreshed.content
        assert refreshed.json()["code"] == "reauthorization_required"
        assert _leaked(listener, refresh_token, SECRET) == []
    grant = Grant.objects.get(client=client)
    assert grant.state == Grant.State.REAUTHORIZATION_REQUIRED and grant.tokens() is None
    assert not grant.original_token_set
    row = AuditEvent.objects.filter(action="oauth_client.updated").latest("id")
    assert "client secret was cleared" in row.message


def test_the_secret_given_again_is_kept_and_the_client_works_after_validating(
    api, validated, validate_headless
) -> None:
    client, _ = validated
    patched = api.patch(
        f"/oauth-clients/{client.pk}", {"verify_ssl": False, "client_secret": SECRET}
    )
    assert patched.status_code == 200, patched.content
    assert patched.json()["has_client_secret"] is True
    # The refresh token cannot be given again: the grant is validated again by its account.
    assert api.post(f"/oauth-clients/{client.pk}/refresh").status_code == 422
    client.refresh_from_db()
    validate_headless(client)
    refreshed = api.post(f"/oauth-clients/{client.pk}/refresh")
    assert refreshed.status_code == 200, refreshed.content
    assert refreshed.json()["state"] == "authorized"


def test_a_change_elsewhere_keeps_secret_and_tokens(api, validated) -> None:
    client, _ = validated
    patched = api.patch(f"/oauth-clients/{client.pk}", {"name": "renamed"})
    assert patched.status_code == 200 and patched.json()["has_client_secret"] is True
    assert patched.json()["notice"] == ""
    assert api.post(f"/oauth-clients/{client.pk}/refresh").status_code == 200


def test_admin_change_of_token_url_then_refresh_sends_no_secret(
    admin_client, validated, oidc
) -> None:
    client, refresh_token = validated
    grant = Grant.objects.get(client=client)
    url = reverse("admin:oauth_oauthclient_change", args=[client.pk])
    help_html = admin_client.get(url).content.decode()
    assert "clears the stored secret unless you type it" in help_html
    with _attacker() as listener:
        form = client_form(
            name=client.name,
            provider="generic",
            client_id=client.client_id,
            client_secret="",
            issuer=oidc.issuer,
            scope=client.scope,
            token_url=f"{listener.url}/token",
            **{
                "grants-TOTAL_FORMS": "1",
                "grants-INITIAL_FORMS": "1",
                "grants-0-id": str(grant.pk),
                "grants-0-client": str(client.pk),
            },
        )
        saved = admin_client.post(url, form, follow=True)
        assert saved.status_code == 200
        page = saved.content.decode()
        assert "client secret was cleared" in page, page[:3000]
        admin_client.post(
            reverse("admin:oauth_grant_changelist"),
            {"action": "refresh", "_selected_action": [grant.pk]},
        )
        assert _leaked(listener, refresh_token, SECRET) == []
    client.refresh_from_db()
    assert not client.client_secret


def test_cli_update_of_token_url_then_refresh_sends_no_secret(validated, capsys) -> None:
    client, refresh_token = validated
    with pytest.raises(SystemExit):
        call_command("client", "update", "--help")
    assert "clears the stored client secret" in " ".join(capsys.readouterr().out.split())
    with _attacker() as listener:
        out = io.StringIO()
        call_command(
            "client", "update", client.name, "--token-url", f"{listener.url}/token", stdout=out
        )
        assert "client secret was cleared" in out.getvalue()
        with pytest.raises(CommandError, match="validated again"):
            call_command("client", "refresh", client.name, stdout=io.StringIO())
        assert _leaked(listener, refresh_token, SECRET) == []
