"""Who acted is named at every step, whoever's browser ends a flow: a Validate started with an
API key is audited as that key from the start to the stored grant (and so is its failure), as
one started on the command line is audited as the command line."""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from django.core.management import call_command
from django.test import Client

from mailgrant.api.models import ApiKey
from mailgrant.common.models import AuditEvent
from tests.servers.oidc import ACCOUNTS

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def _actors(*actions: str) -> list[tuple[str, str]]:
    return list(
        AuditEvent.objects.filter(action__in=actions).order_by("id").values_list("action", "actor")
    )


def test_a_validate_started_with_an_api_key_is_the_key_s_at_every_step(api, oidc, oidc_client):
    client = oidc_client()
    key_actor = f"apikey:{ApiKey.objects.get().name}"
    flow = api.post(f"/oauth-clients/{client.pk}/validate").json()
    redirect = oidc.login_headless(
        flow["authorize_url"],
        login="alice@example.test",
        password=ACCOUNTS["alice@example.test"]["password"],
    )
    landed = Client().get(redirect[redirect.index("/oauth/") :])  # any browser, signed in or not
    assert landed.status_code == 200, landed.content
    grant_id = api.get(f"/authorizations/{flow['authorization_id']}").json()["grant_id"]
    assert api.post(f"/grants/{grant_id}/refresh").status_code == 200
    assert _actors("oauth_client.validate_started", "grant.authorized", "grant.refreshed") == [
        ("oauth_client.validate_started", key_actor),
        ("grant.authorized", key_actor),
        ("grant.refreshed", key_actor),
    ]


def test_a_refused_validate_is_the_starter_s_too(api, oidc, oidc_client) -> None:
    client = oidc_client()
    key_actor = f"apikey:{ApiKey.objects.get().name}"
    flow = api.post(f"/oauth-clients/{client.pk}/validate").json()
    state = parse_qs(urlsplit(flow["authorize_url"]).query)["state"][0]
    query = urlencode({"state": state, "error": "access_denied", "iss": oidc.issuer})
    refused = Client().get(f"/oauth/callback/{client.pk}/?{query}")
    assert refused.status_code == 400
    assert _actors("oauth_client.validate_failed") == [("oauth_client.validate_failed", key_actor)]


def test_a_validate_started_on_the_command_line_is_the_command_line_s(oidc, oidc_client, capsys):
    client = oidc_client()
    call_command("client", "validate", client.name)
    url = capsys.readouterr().out.strip()
    redirect = oidc.login_headless(
        url, login="alice@example.test", password=ACCOUNTS["alice@example.test"]["password"]
    )
    assert Client().get(redirect[redirect.index("/oauth/") :]).status_code == 200
    assert _actors("oauth_client.validate_started", "grant.authorized") == [
        ("oauth_client.validate_started", "cli"),
        ("grant.authorized", "cli"),
    ]
