"""Protocol code on its own (no Django): ID token checks and token-set handling."""

import time

import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from mailgrant.oauth.protocol import (
    IdTokenError,
    ProviderError,
    TokenSet,
    new_authorization,
    verify_id_token,
)

KEY = RSAKey.generate_key(2048, parameters={"kid": "k1"}, private=True)
OTHER_KEY = RSAKey.generate_key(2048, parameters={"kid": "k1"}, private=True)
JWKS = {"keys": [KEY.as_dict(private=False)]}
ISSUER = "https://idp.example.test"


def _id_token(key=KEY, **overrides) -> str:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": "client-1",
        "sub": "alice",
        "iat": now,
        "exp": now + 300,
        "nonce": "n-1",
        "email": "alice@example.test",
    }
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode({"alg": "RS256", "kid": "k1"}, claims, key)


def _verify(token: str, **kwargs):
    params = {"jwks": JWKS, "issuer": ISSUER, "client_id": "client-1", "nonce": "n-1"}
    params.update(kwargs)
    return verify_id_token(id_token=token, **params)


def test_a_good_id_token() -> None:
    assert _verify(_id_token())["email"] == "alice@example.test"


@pytest.mark.parametrize(
    ("token", "message"),
    [
        (lambda: _id_token(key=OTHER_KEY), "signature"),
        (lambda: _id_token(exp=int(time.time()) - 3600), "exp"),
        (lambda: _id_token(aud="someone-else"), "aud"),
        (lambda: _id_token(iss="https://evil.example"), "iss"),
        (lambda: _id_token(nonce="other"), "nonce"),
        (lambda: _id_token(nonce=None), "nonce"),
        (lambda: _id_token(sub=None), "sub"),
        (lambda: "not.a.jwt", "signature"),
        (lambda: _id_token(aud=["client-1", "other"]), "azp"),
    ],
)
def test_bad_id_tokens_are_refused(token, message) -> None:
    with pytest.raises(IdTokenError, match=message):
        _verify(token())


def test_alg_none_is_refused() -> None:
    header = "eyJhbGciOiJub25lIn0"  # {"alg":"none"}
    import base64
    import json

    body = (
        base64.urlsafe_b64encode(
            json.dumps(
                {
                    "iss": ISSUER,
                    "aud": "client-1",
                    "sub": "a",
                    "exp": int(time.time()) + 60,
                    "nonce": "n-1",
                }
            ).encode()
        )
        .rstrip(b"=")
        .decode()
    )
    with pytest.raises(IdTokenError):
        _verify(f"{header}.{body}.")


def test_microsoft_multi_tenant_issuer_must_match_tid() -> None:
    tid = "9188040d-6c67-4c5b-b112-36a304b66dad"
    template = "https://login.microsoftonline.com/{tenantid}/v2.0"
    good = _id_token(iss=f"https://login.microsoftonline.com/{tid}/v2.0", tid=tid)
    assert _verify(good, issuer=template)["tid"] == tid
    other = "72f988bf-86f1-41af-91ab-2d7cd011db47"
    forged = _id_token(iss=f"https://login.microsoftonline.com/{other}/v2.0", tid=tid)
    with pytest.raises(IdTokenError, match="iss"):
        _verify(forged, issuer=template)
    with pytest.raises(IdTokenError, match="tid"):
        _verify(_id_token(iss="https://login.microsoftonline.com/x/v2.0"), issuer=template)


def test_token_set_from_response_and_after_refresh() -> None:
    first = TokenSet.from_response(
        {"access_token": "a1", "refresh_token": "r1", "expires_in": "3600", "scope": ["x", "y"]},
        now=1000,
    )
    assert first.expires_at == 4600 and first.scope == "x y" and first.lifetime == 3600
    second = TokenSet.from_response({"access_token": "a2", "expires_in": 60}, now=2000)
    merged = second.after_refresh(first)
    assert merged.refresh_token == "r1" and merged.access_token == "a2" and merged.scope == "x y"
    assert "a1" not in repr(first) and "r1" not in repr(first)
    with pytest.raises(ProviderError, match="no access_token"):
        TokenSet.from_response({"token_type": "Bearer"})
    with pytest.raises(ProviderError, match="not a number"):
        TokenSet.from_response({"access_token": "a", "expires_in": "soon"})


def test_new_authorization_is_fresh_each_time() -> None:
    params = {
        "authorize_url": "https://idp.example.test/auth",
        "client_id": "c",
        "redirect_uri": "https://mg.example.test/cb",
        "scopes": ["openid", "email"],
    }
    one, two = new_authorization(**params), new_authorization(**params)
    assert one.state != two.state and one.code_verifier != two.code_verifier
    assert one.nonce and one.nonce != two.nonce
    assert len(one.code_verifier) >= 43
    assert new_authorization(**{**params, "scopes": ["mail"]}).nonce is None


from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@given(
    access=st.text(min_size=1, max_size=50),
    refresh=st.none() | st.text(min_size=1, max_size=50),
    expires_in=st.integers(min_value=0, max_value=10**8),
)
def test_token_set_survives_storage(access: str, refresh: str | None, expires_in: int) -> None:
    tokens = TokenSet.from_response(
        {"access_token": access, "refresh_token": refresh, "expires_in": expires_in}, now=1000
    )
    assert TokenSet.from_dict(tokens.to_dict()) == tokens
    assert tokens.expires_at == 1000 + expires_in


@pytest.mark.parametrize(
    ("method", "in_header"), [("client_secret_basic", True), ("client_secret_post", False)]
)
def test_refreshes_share_a_client_but_no_cookie_and_no_credentials(method, in_header) -> None:
    """Refreshes of different grants go through one kept HTTP client: a cookie the endpoint
    sets for one is never sent with the next, and each request carries its own credentials
    and refresh token as Authlib puts them."""
    from mailgrant.common.http import HttpSettings
    from mailgrant.oauth.protocol import Credentials, refresh
    from tests.servers.fakes import Canned, FakeProvider

    with FakeProvider() as fake:
        body = {"access_token": "at-2", "token_type": "Bearer", "expires_in": 60}
        fake.answer("/token", Canned(body=body, headers={"Set-Cookie": "affinity=one; Path=/"}))
        for n, secret in enumerate(["s/1", "s 2"]):
            tokens = refresh(
                http=HttpSettings(timeout=5),
                token_url=f"{fake.url}/token",
                credentials=Credentials(
                    client_id=f"c{n}", client_secret=secret, auth_method=method
                ),
                refresh_token=f"rt-{n}",
            )
            assert tokens.access_token == "at-2" and tokens.refresh_token is None
        first, second = fake.requests_to("/token")
    assert "Cookie" not in second.headers
    for n, request in enumerate([first, second]):
        assert request.form["grant_type"] == "refresh_token"
        assert request.form["refresh_token"] == f"rt-{n}"
        assert ("Authorization" in request.headers) is in_header
        assert ("client_secret" in request.form) is not in_header


def test_a_refused_refresh_is_the_providers_error() -> None:
    from mailgrant.common.http import HttpSettings
    from mailgrant.oauth.protocol import Credentials, refresh
    from tests.servers.fakes import Canned, FakeProvider

    with FakeProvider() as fake:
        fake.answer(
            "/token",
            Canned(400, {"error": "invalid_grant", "error_description": "Token revoked."}),
        )
        with pytest.raises(ProviderError) as refused:
            refresh(
                http=HttpSettings(timeout=5),
                token_url=f"{fake.url}/token",
                credentials=Credentials(client_id="c", client_secret="s"),
                refresh_token="rt",
            )
    assert refused.value.error == "invalid_grant"
    assert refused.value.description == "Token revoked."
    assert refused.value.needs_reauthorization
