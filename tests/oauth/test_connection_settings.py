"""Every request to the provider honours the client's proxy and Verify SSL settings."""

import pytest

from mailgrant.oauth.models import OAuthClient
from mailgrant.oauth.services.clients import oauth_client_check
from mailgrant.oauth.services.tokens import access_token_for
from tests.servers.fakes import FakeProvider

pytestmark = pytest.mark.django_db


@pytest.fixture
def tls_provider():
    with FakeProvider(tls=True) as fake:
        yield fake


def _discovery(fake: FakeProvider) -> None:
    fake.answer(
        "/.well-known/openid-configuration",
        {
            "issuer": fake.url,
            "authorization_endpoint": f"{fake.url}/auth",
            "token_endpoint": f"{fake.url}/token",
            "jwks_uri": f"{fake.url}/jwks",
        },
    )


def test_verify_ssl_refuses_an_untrusted_certificate(tls_provider) -> None:
    _discovery(tls_provider)
    client = OAuthClient(name="tls", provider="generic", client_id="c", issuer=tls_provider.url)
    errors = oauth_client_check(client=client)
    assert "certificate" in errors["issuer"].lower()
    assert tls_provider.requests == []  # the handshake failed before any request


def test_verify_ssl_off_accepts_it(tls_provider, make_client, make_grant) -> None:
    _discovery(tls_provider)
    tls_provider.answer("/token", {"access_token": "at-tls", "expires_in": 3600})
    client = make_client(issuer=tls_provider.url, verify_ssl=False)
    assert client.metadata["token_endpoint"] == f"{tls_provider.url}/token"
    grant = make_grant(client, expires_in=5)
    assert access_token_for(grant=grant).access_token == "at-tls"


def test_token_requests_go_through_the_proxy(fake_provider, make_client, make_grant) -> None:
    fake_provider.answer("/token", {"access_token": "at-proxied", "expires_in": 3600})
    client = make_client(token_url="http://provider.invalid/token", proxy=fake_provider.url)
    grant = make_grant(client, expires_in=5)
    assert access_token_for(grant=grant).access_token == "at-proxied"
    (request,) = fake_provider.requests_to("/token")
    assert request.headers["Host"] == "provider.invalid"
    assert request.form["grant_type"] == "refresh_token"


def test_unreachable_proxy_is_a_clear_transient_error(make_client, make_grant) -> None:
    from mailgrant.common.errors import ServiceError

    client = make_client(token_url="http://provider.invalid/token", proxy="http://127.0.0.1:9")
    grant = make_grant(client, expires_in=-1)
    with pytest.raises(ServiceError, match="cannot connect") as caught:
        access_token_for(grant=grant)
    assert caught.value.transient
