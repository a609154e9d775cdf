"""The sign-in pins on the client's form (a verified email, allowed organizations), given and
refused the same way in the admin, the API and the command line: the provider module says which
claim an organization is (Google hd, Microsoft tid) and what a value looks like."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from mailgrant.oauth.models import OAuthClient
from tests.oauth.client_form import client_form

pytestmark = pytest.mark.django_db

TENANT = "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"


def test_the_api_sets_shows_and_refuses_the_pins(api: Any) -> None:
    created = api.post(
        "/oauth-clients",
        {
            "name": "Workspace",
            "provider": "google",
            "type": "user",
            "client_id": "g",
            "allowed_organizations": ["example.com"],
            "email_verified_required": False,
        },
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["allowed_organizations"] == ["example.com"]
    assert body["email_verified_required"] is False
    default = api.post(
        "/oauth-clients",
        {
            "name": "Default",
            "provider": "generic",
            "client_id": "x",
            "authorize_url": "https://p.invalid/a",
            "token_url": "https://p.invalid/t",
        },
    ).json()
    assert default["email_verified_required"] is True and default["allowed_organizations"] == []

    bad = api.patch(f"/oauth-clients/{body['id']}", {"allowed_organizations": ["not a domain"]})
    assert bad.status_code == 400
    assert {
        "field": "allowed_organizations",
        "message": "'not a domain' is not a hosted domain (e.g. example.com)",
    } in bad.json()["fields"]
    generic = api.patch(f"/oauth-clients/{default['id']}", {"allowed_organizations": ["x.com"]})
    assert generic.status_code == 400
    assert "names no organization" in json.dumps(generic.json())
    wrong_type = api.patch(f"/oauth-clients/{body['id']}", {"email_verified_required": "yes"})
    assert wrong_type.status_code == 400
    assert OAuthClient.objects.get(pk=body["id"]).sign_in.allowed_organizations == ["example.com"]


def cli(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_the_command_line_sets_clears_and_refuses_the_pins() -> None:
    added = cli(
        "client",
        "add",
        "--name",
        "Entra",
        "--provider",
        "azure",
        "--client-id",
        "a",
        "--type",
        "user",
        "--allowed-organization",
        TENANT.upper(),
        "--no-email-verified-required",
        "--json",
    )
    shown = json.loads(added)
    assert shown["allowed_organizations"] == [TENANT.upper()]
    assert shown["email_verified_required"] is False
    with pytest.raises(CommandError, match=r"allowed_organizations: 'contoso' is not a tenant ID"):
        cli("client", "update", "Entra", "--allowed-organization", "contoso")
    cleared = cli("client", "update", "Entra", "--allowed-organization", "", "--json")
    assert json.loads(cleared)["allowed_organizations"] == []


def test_the_admin_form_sets_and_refuses_the_pins(admin_client: Any) -> None:
    data = client_form(
        name="Entra",
        provider="azure",
        type="user",
        client_id="a",
        allowed_organizations=f"{TENANT}, contoso",
        email_verified_required="on",
    )
    response = admin_client.post(reverse("admin:oauth_oauthclient_add"), data)
    assert response.status_code == 200
    assert "&#x27;contoso&#x27; is not a tenant ID (a GUID)" in response.content.decode()
    assert not OAuthClient.objects.exists()

    data["allowed_organizations"] = f"{TENANT}\n"
    response = admin_client.post(reverse("admin:oauth_oauthclient_add"), data)
    assert response.status_code == 302, response.content.decode()[:2000]
    sign_in = OAuthClient.objects.get().sign_in
    assert sign_in.allowed_organizations == [TENANT] and sign_in.email_verified_required
    page = admin_client.get(reverse("admin:oauth_oauthclient_change", args=[sign_in.pk]))
    assert f'value="{TENANT}"' in page.content.decode()
