"""The test OpenID provider itself (tests/servers/oidc). Nothing here needs Django; without it
(tests/conftest.py imports the project's models, hence --noconftest):
.venv/bin/python -m pytest -p no:django --noconftest tests/servers/test_oidc_server.py
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from authlib.common.security import generate_token
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.httpx_client import OAuth2Client
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.peers import require
from tests.servers.oidc import ACCOUNTS, LoginRefused, OidcServer, login_headless, oidc_available

ALICE = "alice@example.test"
SCOPE = "openid email profile groups offline_access mail"


@pytest.fixture(scope="module")
def server() -> Iterator[OidcServer]:
    require(*oidc_available())  # skips, or fails under CI=true
    with OidcServer() as oidc:
        yield oidc


@pytest.fixture
def client(server: OidcServer) -> dict[str, Any]:
    """A confidential client registered at run time, with a redirect URI nobody listens on."""
    metadata: dict[str, Any] = {
        "client_id": f"client-{uuid.uuid4().hex[:10]}",
        "client_secret": f"secret-{uuid.uuid4().hex}",
        "redirect_uris": [f"http://127.0.0.1:9/callback/{uuid.uuid4().hex[:6]}"],
    }
    server.register_client(**metadata)
    return metadata


def oauth(client: dict[str, Any], **kwargs: Any) -> OAuth2Client:
    return OAuth2Client(
        client_id=client["client_id"],
        client_secret=client["client_secret"],
        redirect_uri=client["redirect_uris"][0],
        code_challenge_method="S256",
        scope=SCOPE,
        **kwargs,
    )


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def authorize(
    server: OidcServer, client: dict[str, Any], login: str = ALICE, **kwargs: Any
) -> tuple[str, str]:
    """Authorization request with PKCE through the real pages: (redirect URL, code_verifier)."""
    verifier = generate_token(64)
    with oauth(client) as rp:
        url, _state = rp.create_authorization_url(
            f"{server.issuer}/auth", code_verifier=verifier, prompt="consent", nonce="n-0"
        )
    password = kwargs.pop("password", None) or ACCOUNTS[login]["password"]
    return login_headless(url, login=login, password=password, **kwargs), verifier


def code_flow(server: OidcServer, client: dict[str, Any]) -> dict[str, Any]:
    redirect, verifier = authorize(server, client)
    with oauth(client) as rp:
        return dict(
            rp.fetch_token(
                f"{server.issuer}/token", authorization_response=redirect, code_verifier=verifier
            )
        )


def refresh_raw(server: OidcServer, client: dict[str, Any], refresh_token: str) -> httpx.Response:
    return httpx.post(
        f"{server.issuer}/token",
        data={"grant_type": "refresh_token", "refresh_token": refresh_token},
        auth=(client["client_id"], client["client_secret"]),
    )


def test_start_publishes_discovery_and_stop_frees_the_port() -> None:
    require(*oidc_available())
    preset = {
        "client_id": "preset",
        "client_secret": "preset-secret",
        "redirect_uris": [],
        "grant_types": ["client_credentials"],
    }
    with OidcServer(clients=[preset]) as oidc:
        assert oidc.issuer == f"http://127.0.0.1:{oidc.port}"
        meta = httpx.get(f"{oidc.issuer}/.well-known/openid-configuration").json()
        assert meta["issuer"] == oidc.issuer
        assert meta["authorization_response_iss_parameter_supported"] is True
        assert meta["code_challenge_methods_supported"] == ["S256"]
        assert {"mail", "groups", "offline_access"} <= set(meta["scopes_supported"])
        assert set(meta["token_endpoint_auth_methods_supported"]) == {
            "client_secret_basic",
            "client_secret_post",
        }
        (key,) = httpx.get(meta["jwks_uri"]).json()["keys"]
        assert key["kty"] == "RSA" and key["alg"] == "RS256" and "d" not in key
        # A client from CLIENTS_JSON works at once.
        token = httpx.post(
            meta["token_endpoint"],
            data={"grant_type": "client_credentials"},
            auth=("preset", "preset-secret"),
        )
        assert token.status_code == 200 and token.json()["token_type"] == "Bearer"
        assert oidc.stats()["token"] == {"client_credentials": 1}
        process = oidc.process
        assert process is not None
    assert process.returncode == 0  # SIGTERM: a clean exit
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", oidc.port), timeout=1):
        pass


def test_code_flow_with_pkce_for_a_client_registered_at_run_time(server, client) -> None:
    redirect, verifier = authorize(server, client)
    assert redirect.startswith(client["redirect_uris"][0] + "?")
    params = query(redirect)
    assert params["iss"] == server.issuer  # RFC 9207
    assert "code" in params and "state" in params

    with oauth(client) as rp:
        # The code is bound to the PKCE challenge: a wrong verifier is refused.
        with pytest.raises(OAuthError) as refused:
            rp.fetch_token(
                f"{server.issuer}/token",
                authorization_response=redirect,
                code_verifier=generate_token(64),
            )
        assert refused.value.error == "invalid_grant"

    redirect, verifier = authorize(server, client)
    with oauth(client) as rp:
        token = rp.fetch_token(
            f"{server.issuer}/token", authorization_response=redirect, code_verifier=verifier
        )
    assert set(token["scope"].split()) == set(SCOPE.split())
    assert token["refresh_token"]
    assert len(token["access_token"]) < 100  # opaque, not a JWT

    keys = KeySet.import_key_set(httpx.get(f"{server.issuer}/jwks").json())
    id_token = jwt.decode(token["id_token"], keys, algorithms=["RS256"])
    assert id_token.header["alg"] == "RS256"
    claims = id_token.claims
    alice = ACCOUNTS[ALICE]
    assert claims["iss"] == server.issuer and claims["aud"] == client["client_id"]
    assert claims["sub"] == alice["sub"] and claims["nonce"] == "n-0"
    assert claims["email"] == ALICE and claims["email_verified"] is True
    assert claims["name"] == alice["name"] and claims["preferred_username"] == ALICE
    assert claims["groups"] == alice["groups"]

    userinfo = httpx.get(
        f"{server.issuer}/me", headers={"Authorization": f"Bearer {token['access_token']}"}
    ).json()
    assert userinfo["sub"] == "alice" and userinfo["given_name"] == "Alice"


def test_authorization_without_pkce_is_refused(server, client) -> None:
    with OAuth2Client(client_id=client["client_id"], redirect_uri=client["redirect_uris"][0]) as rp:
        url, _ = rp.create_authorization_url(f"{server.issuer}/auth", scope="openid")
    redirect = httpx.get(url).headers["location"]
    assert query(redirect)["error"] == "invalid_request"
    assert "PKCE" in query(redirect)["error_description"]


def test_registering_again_replaces_the_client(server, client) -> None:
    old_uri = client["redirect_uris"][0]
    client["redirect_uris"] = [old_uri + "-new"]
    server.register_client(**client)
    redirect, _ = authorize(server, client)
    assert redirect.startswith(old_uri + "-new?") and "code" in query(redirect)

    with pytest.raises(RuntimeError, match="redirect_uri"):
        authorize(server, {**client, "redirect_uris": [old_uri]})
    with pytest.raises(ValueError, match="redirect_uris must only contain valid uris"):
        server.register_client(client_id="broken", client_secret="x", redirect_uris=["not a url"])


def test_refresh_rotates_and_reuse_revokes_the_grant(server, client) -> None:
    first = code_flow(server, client)
    server.reset_stats()

    with oauth(client) as rp:
        second = rp.refresh_token(f"{server.issuer}/token", refresh_token=first["refresh_token"])
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]

    reused = refresh_raw(server, client, first["refresh_token"])
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
    # The whole grant is gone: the new refresh token and access token too.
    assert refresh_raw(server, client, second["refresh_token"]).json()["error"] == "invalid_grant"
    info = server.introspect(
        second["access_token"], client_id=client["client_id"], client_secret=client["client_secret"]
    )
    assert info == {"active": False}

    stats = server.stats()
    assert stats["token"] == {"refresh_token": 1}
    assert stats["refresh_by_client"] == {client["client_id"]: 1}
    assert stats["token_errors"] == {"invalid_grant": 2}
    assert stats["grants_revoked"] == 1
    server.reset_stats()
    assert server.stats()["token"] == {} and server.stats()["grants_revoked"] == 0


def test_wrong_password_or_unknown_login_goes_back_to_the_form(server, client) -> None:
    with pytest.raises(LoginRefused):
        authorize(server, client, password="not-alice-password")
    with pytest.raises(LoginRefused):
        authorize(server, client, login="bob@example.test", password=ACCOUNTS[ALICE]["password"])
    with pytest.raises(LoginRefused):
        authorize(server, client, login="mallory@example.test", password="anything")
    assert "server_error" not in server.log
    # Bob with his own password gets in, as bob.
    redirect, _ = authorize(server, client, login="bob@example.test")
    assert "code" in query(redirect)


def test_provider_session_is_kept_in_the_given_http_client(server, client) -> None:
    with httpx.Client(timeout=10) as browser:
        authorize(server, client, http=browser)
        # Logged in already: only the consent (prompt=consent) is asked; a password that would
        # be refused is never posted.
        redirect, _ = authorize(server, client, password="wrong", http=browser)
    assert "code" in query(redirect)


def test_cancel_at_consent_answers_access_denied(server, client) -> None:
    redirect, _ = authorize(server, client, approve=False)
    assert redirect.startswith(client["redirect_uris"][0] + "?")
    params = query(redirect)
    assert params["error"] == "access_denied"
    assert params["iss"] == server.issuer and "code" not in params


def test_introspection_returns_the_email(server, client) -> None:
    token = code_flow(server, client)
    before = server.stats()["introspections"]
    info = server.introspect(
        token["access_token"], client_id=client["client_id"], client_secret=client["client_secret"]
    )
    assert info["active"] is True
    assert info["email"] == ALICE and info["sub"] == "alice"
    assert info["client_id"] == client["client_id"]
    assert "mail" in info["scope"].split()

    # Another confidential client (the resource server), with client_secret_post this time.
    resource_server = {"client_id": f"rs-{uuid.uuid4().hex[:8]}", "client_secret": "rs-secret"}
    server.register_client(
        **resource_server,
        redirect_uris=[],
        grant_types=(),
        token_endpoint_auth_method="client_secret_post",
    )
    posted = httpx.post(
        f"{server.issuer}/token/introspection",
        data={"token": token["access_token"], **resource_server},
    ).json()
    assert posted["active"] is True and posted["email"] == ALICE
    assert server.stats()["introspections"] == before + 2


def test_access_token_ttl_changes_at_run_time(server, client) -> None:
    token = code_flow(server, client)
    assert token["expires_in"] == 3600
    server.set_access_token_ttl(42)
    try:
        with oauth(client) as rp:
            refreshed = rp.refresh_token(
                f"{server.issuer}/token", refresh_token=token["refresh_token"]
            )
        assert refreshed["expires_in"] == 42
        info = server.introspect(
            refreshed["access_token"],
            client_id=client["client_id"],
            client_secret=client["client_secret"],
        )
        assert info["exp"] - info["iat"] == 42
    finally:
        server.set_access_token_ttl(3600)
    assert code_flow(server, client)["expires_in"] == 3600
