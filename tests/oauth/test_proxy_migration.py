"""The migration that seals existing proxy passwords, forwards and back."""

from __future__ import annotations

import pytest

from mailgrant.common.fields import reveal

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("oauth", "0009_grant_issue_token")]
AFTER = [("oauth", "0010_proxy_password")]
PROXY = "http://puser:Migr%40ted-canary@proxy.example.test:3128"


def test_existing_proxy_passwords_are_sealed_and_restored(migrate) -> None:
    apps = migrate(BEFORE)
    OAuthClient = apps.get_model("oauth", "OAuthClient")  # type: ignore[attr-defined]
    OAuthClient.objects.create(name="old", client_id="x", proxy=PROXY)
    OAuthClient.objects.create(name="plain", client_id="y", proxy="http://proxy.example.test:1")
    apps = migrate(AFTER)
    OAuthClient = apps.get_model("oauth", "OAuthClient")  # type: ignore[attr-defined]
    old = OAuthClient.objects.get(name="old")
    assert old.proxy == "http://puser:***@proxy.example.test:3128"
    assert reveal(old.proxy_password) == "Migr%40ted-canary"
    assert not OAuthClient.objects.get(name="plain").proxy_password
    apps = migrate(BEFORE)
    OAuthClient = apps.get_model("oauth", "OAuthClient")  # type: ignore[attr-defined]
    assert OAuthClient.objects.get(name="old").proxy == PROXY
