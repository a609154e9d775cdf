"""sso 0005: identities made before they had an issuer get their client's, where the client
has one issuer; on a multi-tenant endpoint the issuer is unknown and stays empty (the subject's
next sign-in sets it)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("sso", "0004_sign_in"), ("oauth", "0008_grant_refresh_lease")]
AFTER = [("sso", "0005_sign_in_admission")]
TENANT = "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"


def test_existing_identities_get_their_clients_issuer(migrate) -> None:
    apps = migrate(BEFORE)
    OAuthClient = apps.get_model("oauth", "OAuthClient")
    SsoIdentity = apps.get_model("sso", "SsoIdentity")
    User = apps.get_model("auth", "User")
    user = User.objects.create(username="ann")
    clients = {
        "generic": OAuthClient.objects.create(
            name="g", provider="generic", client_id="g", metadata={"issuer": "https://id.test"}
        ),
        "google": OAuthClient.objects.create(name="go", provider="google", client_id="go"),
        "azure-single": OAuthClient.objects.create(
            name="as", provider="azure", client_id="as", tenant=TENANT
        ),
        "azure-multi": OAuthClient.objects.create(name="am", provider="azure", client_id="am"),
    }
    for client in clients.values():
        SsoIdentity.objects.create(client=client, subject="s", user=user)

    apps = migrate(AFTER)
    SsoIdentity = apps.get_model("sso", "SsoIdentity")
    issuers = {i.client.name: i.issuer for i in SsoIdentity.objects.select_related("client")}
    assert issuers == {
        "g": "https://id.test",
        "go": "https://accounts.google.com",
        "as": f"https://login.microsoftonline.com/{TENANT}/v2.0",
        "am": "",
    }
