"""A sign-in whose ID token or authorization response is wrong in one way each: refused,
nothing created. The provider is a fake on a real socket (discovery, JWKS, token endpoint),
because the real test provider cannot be made to sign with another key or mix up issuers."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from joserfc import jwt
from joserfc.jwk import RSAKey

from mailgrant.common.models import AuditEvent
from mailgrant.sso.models import SsoIdentity
from tests.servers.fakes import FakeProvider
from tests.sso.signin import page_text, query_of, sign_in_start

pytestmark = pytest.mark.django_db

User = get_user_model()
KEY = RSAKey.generate_key(2048, parameters={"kid": "signing-key"})
# Same kid, another key: what a forger who knows the kid would do.
FORGER = RSAKey.generate_key(2048, parameters={"kid": "signing-key"})


@pytest.fixture
def fake_oidc(fake_provider: FakeProvider, make_client: Any) -> Any:
    url = fake_provider.url
    fake_provider.answer(
        "/.well-known/openid-configuration",
        {
            "issuer": url,
            "authorization_endpoint": f"{url}/authorize",
            "token_endpoint": f"{url}/token",
            "userinfo_endpoint": f"{url}/userinfo",
            "jwks_uri": f"{url}/jwks",
            "authorization_response_iss_parameter_supported": True,
        },
    )
    fake_provider.answer("/jwks", {"keys": [KEY.as_dict(private=False)]})
    client = make_client(
        name="Fake sign-in",
        type="user",
        issuer=url,
        client_id="fake-sso",
        scope="openid email",
        username_attribute="email",
        user_create_expression="true",
    )
    return fake_provider, client


def sign_in_with(
    fake_oidc: Any, *, key: RSAKey = KEY, iss_param: str | None = "", **overrides: Any
) -> Any:
    fake, client = fake_oidc
    browser = Client()
    request = query_of(sign_in_start(browser, client))
    now = int(time.time())
    claims = {
        "iss": fake.url,
        "aud": client.client_id,
        "sub": "person-1",
        "email": "person@example.test",
        "email_verified": True,
        "iat": now,
        "exp": now + 300,
        "nonce": request["nonce"],
        **overrides,
    }
    claims = {k: v for k, v in claims.items() if v is not None}
    id_token = jwt.encode({"alg": "RS256", "kid": "signing-key"}, claims, key)
    fake.answer(
        "/token",
        {"access_token": "at", "token_type": "Bearer", "expires_in": 300, "id_token": id_token},
    )
    iss = fake.url if iss_param == "" else iss_param
    iss_part = f"&iss={iss}" if iss is not None else ""
    return browser.get(
        f"/oauth/callback/{client.pk}/?code=the-code&state={request['state']}{iss_part}"
    )


def assert_refused(response: Any, words: str) -> None:
    assert response.status_code == 403, response.content[:300]
    assert words in page_text(response)
    assert not User.objects.exists() and not SsoIdentity.objects.exists()
    assert AuditEvent.objects.filter(action="sso.login_refused").exists()


def test_a_well_formed_sign_in_passes(fake_oidc: Any) -> None:
    response = sign_in_with(fake_oidc)
    assert response.status_code == 302
    assert User.objects.get().username == "person@example.test"


def test_an_id_token_signed_by_another_key(fake_oidc: Any) -> None:
    assert_refused(sign_in_with(fake_oidc, key=FORGER), "signature does not verify")


def test_an_expired_id_token(fake_oidc: Any) -> None:
    now = int(time.time())
    assert_refused(sign_in_with(fake_oidc, iat=now - 3600, exp=now - 1800), "expired")


def test_a_wrong_nonce(fake_oidc: Any) -> None:
    assert_refused(sign_in_with(fake_oidc, nonce="not-the-nonce"), "nonce")


def test_a_missing_nonce(fake_oidc: Any) -> None:
    assert_refused(sign_in_with(fake_oidc, nonce=None), "nonce")


def test_an_id_token_from_another_issuer(fake_oidc: Any) -> None:
    assert_refused(sign_in_with(fake_oidc, iss="https://evil.example"), "iss")


def test_an_id_token_for_another_client(fake_oidc: Any) -> None:
    assert_refused(sign_in_with(fake_oidc, aud="someone-else"), "aud")


def test_an_authorization_response_from_another_issuer(fake_oidc: Any) -> None:
    assert_refused(sign_in_with(fake_oidc, iss_param="https://evil.example"), "mix-up")


def test_an_authorization_response_without_iss_when_announced(fake_oidc: Any) -> None:
    assert_refused(sign_in_with(fake_oidc, iss_param=None), "iss")


def test_an_id_token_without_subject(fake_oidc: Any) -> None:
    assert_refused(sign_in_with(fake_oidc, sub=None), "sub")


def test_an_id_token_issued_to_another_party(fake_oidc: Any) -> None:
    # One audience (us), but authorized for someone else (OpenID Connect Core 3.1.3.7).
    assert_refused(sign_in_with(fake_oidc, azp="someone-else"), "another party")


def test_an_id_token_whose_azp_is_us_passes(fake_oidc: Any) -> None:
    _, client = fake_oidc
    response = sign_in_with(fake_oidc, aud=[client.client_id, "api"], azp=client.client_id)
    assert response.status_code == 302
