"""Refresh against Google's and Microsoft's own answers, served by a fake on a real socket."""

import socket

import pytest

from mailgrant.common.errors import ServiceError
from mailgrant.oauth.models import Grant
from mailgrant.oauth.services.tokens import access_token_for, grant_refresh
from tests.servers.fakes import GOOGLE_INVALID_GRANT, Canned, aadsts_error

pytestmark = pytest.mark.django_db


def test_google_refresh_without_refresh_token_keeps_the_old_one(
    make_client, make_grant, fake_provider
) -> None:
    fake_provider.answer(
        "/token",
        {
            "access_token": "ya29.new",
            "expires_in": 3599,
            "scope": "https://mail.google.com/",
            "token_type": "Bearer",
        },
    )
    client = make_client(
        provider="google", token_url=f"{fake_provider.url}/token", client_secret="GOCSPX-secret"
    )
    grant = make_grant(client, refresh_token="1//keep-me", expires_in=10)
    tokens = access_token_for(grant=grant)
    assert tokens.access_token == "ya29.new"
    assert tokens.refresh_token == "1//keep-me"
    (request,) = fake_provider.requests_to("/token")
    assert request.form == {
        "grant_type": "refresh_token",
        "refresh_token": "1//keep-me",
        "client_id": "mailgrant-test",
        "client_secret": "GOCSPX-secret",
    }
    grant.refresh_from_db()
    assert grant.refresh_count == 1 and grant.last_refresh_at is not None
    # The original token set (from validation) is untouched by refreshes.
    assert grant.original_token_set.reveal_json()["access_token"] == "at-initial"


def test_rotated_refresh_token_is_saved(make_client, make_grant, fake_provider) -> None:
    fake_provider.answer(
        "/token", {"access_token": "at-2", "expires_in": 3600, "refresh_token": "rt-2"}
    )
    client = make_client(provider="azure", token_url=f"{fake_provider.url}/token")
    grant = grant_refresh(grant=make_grant(client))
    assert grant.tokens().refresh_token == "rt-2"
    assert Grant.objects.get(pk=grant.pk).tokens().refresh_token == "rt-2"


def test_fresh_token_is_not_refreshed(make_client, make_grant, fake_provider) -> None:
    client = make_client(token_url=f"{fake_provider.url}/token")
    grant = make_grant(client, expires_in=3000, lifetime=3600)  # ten minutes old
    assert access_token_for(grant=grant).access_token == "at-initial"
    assert fake_provider.requests == []
    fake_provider.answer("/token", {"access_token": "at-longer", "expires_in": 7200})
    assert access_token_for(grant=grant, min_valid_seconds=5400).access_token == "at-longer"


@pytest.mark.parametrize(
    ("canned", "text"),
    [
        (
            aadsts_error(
                "invalid_grant", 700082, "The refresh token has expired due to inactivity."
            ),
            "AADSTS700082",
        ),
        (
            aadsts_error(
                "invalid_grant",
                50173,
                "The provided grant has expired due to it being "
                "revoked, a fresh auth token is needed.",
            ),
            "AADSTS50173",
        ),
        (GOOGLE_INVALID_GRANT, "Token has been expired or revoked."),
    ],
)
def test_invalid_grant_requires_reauthorization(
    make_client, make_grant, fake_provider, canned, text
) -> None:
    fake_provider.answer("/token", canned)
    client = make_client(provider="azure", token_url=f"{fake_provider.url}/token")
    grant = make_grant(client, expires_in=1)
    with pytest.raises(ServiceError, match="validate again") as caught:
        access_token_for(grant=grant)
    assert caught.value.code == "reauthorization_required"
    grant.refresh_from_db()
    assert grant.state == Grant.State.REAUTHORIZATION_REQUIRED
    assert text in grant.last_error
    assert grant.tokens().refresh_token == "rt-initial"  # kept for the record, not reused:
    with pytest.raises(ServiceError, match="validated again"):
        access_token_for(grant=grant)
    assert len(fake_provider.requests_to("/token")) == 1


def test_expired_client_secret_is_named(make_client, make_grant, fake_provider) -> None:
    fake_provider.answer(
        "/token",
        aadsts_error(
            "invalid_client", 7000222, "The provided client secret keys for app '1234' are expired."
        ),
    )
    client = make_client(provider="azure", token_url=f"{fake_provider.url}/token")
    grant = make_grant(client, expires_in=1)
    with pytest.raises(ServiceError, match="client secret has expired"):
        access_token_for(grant=grant)
    grant.refresh_from_db()
    assert grant.state == Grant.State.ERROR
    assert "AADSTS7000222" in grant.last_error


def test_outage_keeps_a_still_valid_token_and_state(make_client, make_grant, fake_provider):
    fake_provider.answer(
        "/token", Canned(503, b"<html>Service Unavailable</html>", {"Content-Type": "text/html"})
    )
    client = make_client(token_url=f"{fake_provider.url}/token")
    grant = make_grant(client, expires_in=60)  # inside the refresh margin, not yet expired
    assert access_token_for(grant=grant).access_token == "at-initial"
    grant.refresh_from_db()
    assert grant.state == Grant.State.AUTHORIZED
    assert "HTTP 503" in grant.last_error


def test_provider_down_and_token_expired(make_client, make_grant) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    client = make_client(token_url=f"http://127.0.0.1:{port}/token")
    grant = make_grant(client, expires_in=-5)
    with pytest.raises(ServiceError, match="cannot connect") as caught:
        access_token_for(grant=grant)
    assert caught.value.transient
    grant.refresh_from_db()
    assert grant.tokens().refresh_token == "rt-initial"


def test_disabled_client_gives_no_token(make_client, make_grant, fake_provider) -> None:
    client = make_client(status="disabled", token_url=f"{fake_provider.url}/token")
    grant = make_grant(client)
    with pytest.raises(ServiceError, match="disabled"):
        access_token_for(grant=grant)
    assert fake_provider.requests == []


def test_grant_without_refresh_token(make_client, make_grant, fake_provider) -> None:
    client = make_client(token_url=f"{fake_provider.url}/token")
    grant = make_grant(client, refresh_token=None, expires_in=1)
    with pytest.raises(ServiceError, match="no refresh token"):
        access_token_for(grant=grant)
