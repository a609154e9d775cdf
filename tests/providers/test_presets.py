"""The Google and Azure presets: exact authorize URLs and token requests, against a fake on a
real socket where the real provider cannot be reached."""

from urllib.parse import parse_qs, urlsplit

import pytest
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from mailgrant.oauth.models import Grant, PendingAuthorization
from mailgrant.oauth.services.authorization import authorization_complete, authorization_start
from mailgrant.providers import PROVIDERS, get_provider

pytestmark = pytest.mark.django_db


def _params(url: str) -> tuple[str, dict[str, str]]:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    return f"{parts.scheme}://{parts.netloc}{parts.path}", query


def _expected_pkce(started) -> dict[str, str]:
    pending = PendingAuthorization.objects.get(pk=started.pending.pk)
    return {
        "code_challenge": create_s256_code_challenge(pending.code_verifier.reveal()),
        "code_challenge_method": "S256",
        "nonce": pending.nonce,
    }


def test_registry_is_explicit() -> None:
    assert list(PROVIDERS) == ["google", "azure", "generic"]
    with pytest.raises(KeyError, match="known: google, azure, generic"):
        get_provider("yahoo")


def test_google_mailbox_authorize_url(make_client) -> None:
    client = make_client(provider="google", client_id="1234.apps.googleusercontent.com")
    started = authorization_start(client=client, purpose="api")
    base, query = _params(started.url)
    assert base == "https://accounts.google.com/o/oauth2/v2/auth"
    assert query == {
        "response_type": "code",
        "client_id": "1234.apps.googleusercontent.com",
        "redirect_uri": f"http://testserver/oauth/callback/{client.pk}/",
        "scope": "https://mail.google.com/ openid email",
        "state": query["state"],
        "access_type": "offline",
        "prompt": "consent",
        **_expected_pkce(started),
    }
    assert len(query["state"]) >= 32


@pytest.mark.parametrize(
    ("tenant", "path_tenant"),
    [
        ("", "organizations"),
        ("contoso.onmicrosoft.com", "contoso.onmicrosoft.com"),
        ("9188040d-6c67-4c5b-b112-36a304b66dad", "9188040d-6c67-4c5b-b112-36a304b66dad"),
    ],
)
def test_azure_mailbox_authorize_url(make_client, tenant: str, path_tenant: str) -> None:
    client = make_client(provider="azure", client_id="app-guid", tenant=tenant)
    started = authorization_start(client=client, purpose="api")
    base, query = _params(started.url)
    assert base == f"https://login.microsoftonline.com/{path_tenant}/oauth2/v2.0/authorize"
    assert query == {
        "response_type": "code",
        "client_id": "app-guid",
        "redirect_uri": f"http://testserver/oauth/callback/{client.pk}/",
        "scope": "https://outlook.office.com/IMAP.AccessAsUser.All "
        "https://outlook.office.com/POP.AccessAsUser.All "
        "https://outlook.office.com/SMTP.Send offline_access openid email",
        "state": query["state"],
        **_expected_pkce(started),
    }


def test_user_type_defaults_and_custom_scope_separator(make_client) -> None:
    google_user = make_client(provider="google", type="user")
    _, query = _params(authorization_start(client=google_user, purpose="api").url)
    assert query["scope"] == "openid profile email"
    assert "access_type" not in query
    generic = make_client(scope="openid,email,offline_access", scope_separator=",")
    _, query = _params(authorization_start(client=generic, purpose="api").url)
    assert query["scope"] == "openid,email,offline_access"
    assert query["prompt"] == "consent"  # OIDC: offline_access needs prompt=consent


def _complete(client, fake, started, code="4/0AQlEd8x-code"):
    _, query = _params(started.url)
    return authorization_complete(
        client_id=client.pk, state=query["state"], bindings=[started.binding], code=code
    )


def test_google_code_exchange_request_and_identity(make_client, fake_provider) -> None:
    fake_provider.answer(
        "/token",
        {
            "access_token": "ya29.google-access",
            "expires_in": 3599,
            "refresh_token": "1//google-rt",
            "scope": "https://mail.google.com/ openid email",
            "token_type": "Bearer",
        },
    )
    fake_provider.answer("/userinfo", {"sub": "1098", "email": "support@example.com"})
    client = make_client(
        provider="google",
        client_id="1234.apps.googleusercontent.com",
        client_secret="GOCSPX-google-secret",
        token_url=f"{fake_provider.url}/token",
        userinfo_endpoint=f"{fake_provider.url}/userinfo",
    )
    started = authorization_start(client=client, purpose="validate")
    result = _complete(client, fake_provider, started)
    assert result.account == "support@example.com"
    (request,) = fake_provider.requests_to("/token")
    verifier = PendingAuthorization.objects.get(pk=started.pending.pk).code_verifier.reveal()
    assert request.form == {
        "grant_type": "authorization_code",
        "code": "4/0AQlEd8x-code",
        "redirect_uri": f"http://testserver/oauth/callback/{client.pk}/",
        "code_verifier": verifier,
        "client_id": "1234.apps.googleusercontent.com",
        "client_secret": "GOCSPX-google-secret",
    }
    assert "Authorization" not in request.headers  # client_secret_post, as Google documents
    (userinfo,) = fake_provider.requests_to("/userinfo")
    assert userinfo.headers["Authorization"] == "Bearer ya29.google-access"
    grant = Grant.objects.get(client=client, is_default=True)
    assert grant.state == Grant.State.AUTHORIZED
    assert grant.tokens().refresh_token == "1//google-rt"
    assert grant.original_token_set.reveal_json()["access_token"] == "ya29.google-access"


def test_google_reconsent_without_refresh_token_keeps_the_old_one(make_client, fake_provider):
    fake_provider.answer(
        "/token",
        {"access_token": "ya29.first", "expires_in": 3599, "refresh_token": "1//rt"},
        {"access_token": "ya29.second", "expires_in": 3599},
    )
    fake_provider.answer("/userinfo", {"sub": "1098", "email": "support@example.com"})
    client = make_client(
        provider="google",
        token_url=f"{fake_provider.url}/token",
        userinfo_endpoint=f"{fake_provider.url}/userinfo",
    )
    _complete(client, fake_provider, authorization_start(client=client, purpose="validate"))
    result = _complete(
        client, fake_provider, authorization_start(client=client, purpose="validate")
    )
    tokens = result.grant.tokens()
    assert tokens.access_token == "ya29.second"
    assert tokens.refresh_token == "1//rt"
    assert result.warnings == []
    assert Grant.objects.filter(client=client).count() == 1
