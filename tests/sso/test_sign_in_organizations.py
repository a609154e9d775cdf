"""Allowed organizations (Google's hosted domain, Microsoft's tenant) at every sign-in, and
identities kept apart by issuer: the same `sub` from two tenants of a multi-tenant endpoint is
two people. The providers are fakes on a real socket (discovery-free presets, JWKS, token
endpoint), because no local peer issues Google's or Microsoft's ID tokens."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from joserfc import jwt
from joserfc.jwk import RSAKey

from mailgrant.common.models import AuditEvent
from mailgrant.oauth.models import OAuthClient
from mailgrant.sso.models import SsoIdentity
from tests.servers.fakes import FakeProvider
from tests.sso.signin import page_text, query_of, sign_in_start

pytestmark = pytest.mark.django_db

User = get_user_model()
KEY = RSAKey.generate_key(2048, parameters={"kid": "k1"})
TENANT_A = "aaaaaaaa-0000-4000-8000-00000000000a"
TENANT_B = "bbbbbbbb-0000-4000-8000-00000000000b"


def preset_client(fake: FakeProvider, make_client: Any, **fields: Any) -> OAuthClient:
    """A Google or Azure client whose endpoints (and key set) are the fake's."""
    fields.setdefault("user_create_expression", "true")
    client = make_client(
        type="user",
        authorize_url=f"{fake.url}/authorize",
        token_url=f"{fake.url}/token",
        **fields,
    )
    OAuthClient.objects.filter(pk=client.pk).update(metadata={"jwks_uri": f"{fake.url}/jwks"})
    fake.answer("/jwks", {"keys": [KEY.as_dict(private=False)]})
    return OAuthClient.objects.get(pk=client.pk)


def sign_in_with(fake: FakeProvider, client: OAuthClient, **claims: Any) -> Any:
    browser = Client()
    request = query_of(sign_in_start(browser, client))
    now = int(time.time())
    body = {"aud": client.client_id, "iat": now, "exp": now + 300, "nonce": request["nonce"]}
    id_token = jwt.encode({"alg": "RS256", "kid": "k1"}, {**body, **claims}, KEY)
    fake.answer(
        "/token",
        {"access_token": "at", "token_type": "Bearer", "expires_in": 300, "id_token": id_token},
    )
    return browser.get(f"/oauth/callback/{client.pk}/?code=c&state={request['state']}")


def google(person: str, **claims: Any) -> dict[str, Any]:
    return {
        "iss": "https://accounts.google.com",
        "sub": f"g-{person}",
        "email": f"{person}@example.com",
        "email_verified": True,
        **claims,
    }


def azure(tenant: str, sub: str, username: str) -> dict[str, Any]:
    return {
        "iss": f"https://login.microsoftonline.com/{tenant}/v2.0",
        "tid": tenant,
        "sub": sub,
        "preferred_username": username,
    }


def refused(response: Any, code: str) -> None:
    assert response.status_code == 403, response.content[:300]
    assert code in AuditEvent.objects.filter(action="sso.login_refused").latest("pk").message


def test_google_hosted_domains_admit_their_people_only(
    fake_provider: FakeProvider, make_client: Any
) -> None:
    client = preset_client(
        fake_provider,
        make_client,
        name="Workspace",
        provider="google",
        client_id="g.apps",
        allowed_organizations=["Example.com"],
    )
    assert sign_in_with(fake_provider, client, **google("ann", hd="example.com")).status_code == 302
    response = sign_in_with(fake_provider, client, **google("eve", hd="evil.example"))
    refused(response, "organization_refused")
    assert "allowed organizations" in page_text(response)
    # A consumer account has no hd at all.
    refused(sign_in_with(fake_provider, client, **google("joe")), "organization_refused")
    assert list(User.objects.values_list("username", flat=True)) == ["ann@example.com"]

    # At every sign-in: ann's domain dropped from the list refuses her next sign-in too.
    client.sign_in.allowed_organizations = ["other.example"]
    client.sign_in.save()
    ann = google("ann", hd="example.com")
    refused(sign_in_with(fake_provider, client, **ann), "organization_refused")


def test_google_refuses_an_unverified_email_that_names_the_user(
    fake_provider: FakeProvider, make_client: Any
) -> None:
    client = preset_client(
        fake_provider, make_client, name="Google", provider="google", client_id="g.apps"
    )
    response = sign_in_with(fake_provider, client, **google("ann", email_verified=False))
    refused(response, "email_unverified")
    assert not User.objects.exists()


def test_azure_tenants_admit_their_people_only(
    fake_provider: FakeProvider, make_client: Any
) -> None:
    client = preset_client(
        fake_provider,
        make_client,
        name="Entra",
        provider="azure",
        client_id="c0ffee00-0000-4000-8000-000000000001",
        allowed_organizations=[TENANT_A.upper()],
    )
    ok = sign_in_with(fake_provider, client, **azure(TENANT_A, "s-1", "ann@a.example"))
    assert ok.status_code == 302
    other = sign_in_with(fake_provider, client, **azure(TENANT_B, "s-2", "eve@b.example"))
    refused(other, "organization_refused")
    assert list(User.objects.values_list("username", flat=True)) == ["ann@a.example"]


def test_the_same_subject_from_two_tenants_is_two_people(
    fake_provider: FakeProvider, make_client: Any
) -> None:
    client = preset_client(
        fake_provider,
        make_client,
        name="Entra",
        provider="azure",
        client_id="c0ffee00-0000-4000-8000-000000000001",
    )
    first = sign_in_with(fake_provider, client, **azure(TENANT_A, "same-sub", "ann@a.example"))
    second = sign_in_with(fake_provider, client, **azure(TENANT_B, "same-sub", "bea@b.example"))
    assert first.status_code == second.status_code == 302
    identities = {i.issuer: i.user.username for i in SsoIdentity.objects.all()}
    assert identities == {
        f"https://login.microsoftonline.com/{TENANT_A}/v2.0": "ann@a.example",
        f"https://login.microsoftonline.com/{TENANT_B}/v2.0": "bea@b.example",
    }
    # Each comes back as themself.
    response = sign_in_with(fake_provider, client, **azure(TENANT_B, "same-sub", "renamed"))
    assert response.status_code == 302 and User.objects.count() == 2
    assert (
        "signed in as bea@b.example (identity)"
        in AuditEvent.objects.filter(action="sso.login").latest("pk").message
    )


def test_an_identity_linked_by_hand_takes_the_issuer_of_its_first_sign_in(
    fake_provider: FakeProvider, make_client: Any
) -> None:
    client = preset_client(
        fake_provider,
        make_client,
        name="Entra",
        provider="azure",
        client_id="c0ffee00-0000-4000-8000-000000000001",
        user_create_expression="",
    )
    user = User.objects.create_user("ann")
    SsoIdentity.objects.create(client=client, subject="s-1", user=user)
    assert sign_in_with(fake_provider, client, **azure(TENANT_A, "s-1", "x")).status_code == 302
    identity = SsoIdentity.objects.get()
    assert identity.issuer == f"https://login.microsoftonline.com/{TENANT_A}/v2.0"
    # The subject from another tenant is someone else, with no account here.
    refused(sign_in_with(fake_provider, client, **azure(TENANT_B, "s-1", "x")), "creation_disabled")
