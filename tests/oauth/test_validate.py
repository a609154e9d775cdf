"""Validate against the real OpenID provider, through the admin's own views: the good path and
every way it can go wrong, each with its message and nothing stored or changed."""

from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from django.urls import reverse

from mailgrant.oauth.models import Grant, OAuthClient
from tests.servers.oidc import ACCOUNTS

pytestmark = [pytest.mark.django_db, pytest.mark.integration]


def _start(admin_client, client: OAuthClient, **post) -> str:
    response = admin_client.post(
        reverse("admin:oauth_oauthclient_validate", args=[client.pk]), post
    )
    assert response.status_code == 302, response.content
    return response["Location"]


def _login(oidc, authorize_url: str, login: str = "alice@example.test", **kwargs) -> str:
    return oidc.login_headless(
        authorize_url, login=login, password=ACCOUNTS[login]["password"], **kwargs
    )


def _callback(admin_client, redirect: str):
    parts = urlsplit(redirect)
    return admin_client.get(f"{parts.path}?{parts.query}", follow=True)


def _messages(response) -> str:
    return " | ".join(str(m) for m in response.context["messages"])


def _snapshot(client: OAuthClient):
    return [
        (g.pk, g.state, g.account, g.token_set, g.original_token_set, g.expires_at)
        for g in Grant.objects.filter(client=client).order_by("pk")
    ]


def test_validate_authorizes_and_revalidate_keeps_the_grant(admin_client, oidc, oidc_client):
    client = oidc_client()
    authorize_url = _start(admin_client, client)
    query = parse_qs(urlsplit(authorize_url).query)
    assert query["code_challenge_method"] == ["S256"] and query["nonce"]
    assert query["prompt"] == ["consent"]
    redirect = _login(oidc, authorize_url)
    assert parse_qs(urlsplit(redirect).query)["iss"] == [oidc.issuer]  # RFC 9207
    response = _callback(admin_client, redirect)
    assert response.redirect_chain[-1][0] == reverse(
        "admin:oauth_oauthclient_change", args=[client.pk]
    )
    assert "Authorized as alice@example.test" in _messages(response)
    grant = Grant.objects.get(client=client)
    assert grant.is_default and grant.state == Grant.State.AUTHORIZED
    tokens = grant.tokens()
    assert tokens.refresh_token and tokens.id_token and tokens.expires_at
    assert grant.original_token_set.reveal_json()["access_token"] == tokens.access_token

    # Validate again, in place, as another account: same row, new tokens, a warning.
    response = _callback(
        admin_client, _login(oidc, _start(admin_client, client), login="bob@example.test")
    )
    assert "Authorized as bob@example.test" in _messages(response)
    assert "was authorized as alice@example.test before" in _messages(response)
    again = Grant.objects.get(client=client)
    assert again.pk == grant.pk and again.account == "bob@example.test"
    assert again.tokens().access_token != tokens.access_token


def test_revalidate_a_grant_needing_reauthorization(
    admin_client, oidc, oidc_client, validate_headless
):
    client = oidc_client()
    grant = validate_headless(client).grant
    Grant.objects.filter(pk=grant.pk).update(
        state=Grant.State.REAUTHORIZATION_REQUIRED, last_error="invalid_grant: revoked"
    )
    page = admin_client.get(reverse("admin:oauth_oauthclient_change", args=[client.pk]))
    assert "Validate again" in page.content.decode()
    redirect = _login(oidc, _start(admin_client, client, grant=grant.pk))
    _callback(admin_client, redirect)
    grant.refresh_from_db()
    assert grant.state == Grant.State.AUTHORIZED and grant.last_error == ""


def test_access_denied_changes_nothing(admin_client, oidc, oidc_client, validate_headless):
    client = oidc_client()
    validate_headless(client)
    before = _snapshot(client)
    redirect = _login(oidc, _start(admin_client, client), approve=False)
    response = _callback(admin_client, redirect)
    assert "access_denied" in _messages(response)
    assert _snapshot(client) == before


def test_forged_missing_and_replayed_state(admin_client, oidc, oidc_client):
    client = oidc_client()
    redirect = _login(oidc, _start(admin_client, client))
    parts = urlsplit(redirect)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    forged = _callback(admin_client, f"{parts.path}?{urlencode({**query, 'state': 'x' * 43})}")
    assert "Unknown state" in _messages(forged)
    missing = _callback(admin_client, f"{parts.path}?code={query['code']}")
    assert "carries no state" in _messages(missing)
    assert not Grant.objects.filter(client=client).exists()
    assert "Authorized as" in _messages(_callback(admin_client, redirect))
    before = _snapshot(client)
    replayed = _callback(admin_client, redirect)
    assert "already used" in _messages(replayed)
    assert _snapshot(client) == before


def test_state_is_bound_to_the_admin_session(
    admin_client, client, django_user_model, oidc, oidc_client
):
    oauth_client = oidc_client()
    redirect = _login(oidc, _start(admin_client, oauth_client))
    other = django_user_model.objects.create_superuser("other", "o@example.test", "pw-other-1")
    client.force_login(other)
    response = _callback(client, redirect)
    assert "started in another browser session" in _messages(response)
    assert not Grant.objects.filter(client=oauth_client).exists()


def test_state_of_another_client_is_refused(admin_client, oidc, oidc_client):
    first, second = oidc_client(), oidc_client()
    redirect = _login(oidc, _start(admin_client, first))
    parts = urlsplit(redirect)
    path = reverse("oauth:callback", args=[second.pk])
    response = _callback(admin_client, f"{path}?{parts.query}")
    assert "Unknown state" in _messages(response)
    assert not Grant.objects.exists()


def test_wrong_client_secret(admin_client, oidc, oidc_client):
    client = oidc_client()
    redirect = _login(oidc, _start(admin_client, client))
    client.client_secret = "not-the-registered-secret"
    client.save()
    response = _callback(admin_client, redirect)
    assert "invalid_client" in _messages(response)
    assert not Grant.objects.filter(client=client).exists()


def test_provider_down_during_the_code_exchange(admin_client, oidc, oidc_client):
    client = oidc_client()
    redirect = _login(oidc, _start(admin_client, client))
    OAuthClient.objects.filter(pk=client.pk).update(
        metadata={**client.metadata, "token_endpoint": "http://127.0.0.1:9/token"}
    )
    response = _callback(admin_client, redirect)
    assert "could not be reached" in _messages(response)
    assert not Grant.objects.filter(client=client).exists()


def test_client_disabled_before_the_callback(admin_client, oidc, oidc_client):
    client = oidc_client()
    redirect = _login(oidc, _start(admin_client, client))
    OAuthClient.objects.filter(pk=client.pk).update(status="disabled")
    response = _callback(admin_client, redirect)
    assert "disabled" in _messages(response)
    assert not Grant.objects.filter(client=client).exists()


def test_iss_mismatch_is_refused(admin_client, oidc, oidc_client):
    client = oidc_client()
    redirect = _login(oidc, _start(admin_client, client))
    parts = urlsplit(redirect)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    mixed = _callback(
        admin_client, f"{parts.path}?{urlencode({**query, 'iss': 'https://evil.example'})}"
    )
    assert "RFC 9207" in _messages(mixed)
    assert not Grant.objects.filter(client=client).exists()


def test_expired_state(admin_client, oidc, oidc_client):
    from mailgrant.oauth.models import PendingAuthorization

    client = oidc_client()
    redirect = _login(oidc, _start(admin_client, client))
    from django.utils import timezone

    PendingAuthorization.objects.update(expires_at=timezone.now())
    assert "expired" in _messages(_callback(admin_client, redirect))
    assert not Grant.objects.filter(client=client).exists()


def test_old_started_authorizations_are_purged(make_client):
    from datetime import timedelta

    from django.utils import timezone

    from mailgrant.oauth.models import PendingAuthorization
    from mailgrant.oauth.services.authorization import authorization_start

    client = make_client()
    old = authorization_start(client=client, purpose="api").pending
    PendingAuthorization.objects.filter(pk=old.pk).update(
        expires_at=timezone.now() - timedelta(days=2)
    )
    authorization_start(client=client, purpose="api")
    assert not PendingAuthorization.objects.filter(pk=old.pk).exists()
    assert PendingAuthorization.objects.count() == 1
