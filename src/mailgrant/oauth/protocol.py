"""Talking to an OAuth2 / OpenID provider: plain values in, dataclasses out, no Django.

Authlib does the protocol (PKCE, client authentication, token requests); joserfc checks ID
tokens. Every HTTP client is built from :func:`mailgrant.common.http.http_client_options`, so
the client's proxy, TLS verification and timeouts apply everywhere.
"""

from __future__ import annotations

import functools
import re
import ssl
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from http.cookiejar import Cookie, CookieJar, DefaultCookiePolicy
from typing import Any

import httpx
from authlib.common.security import generate_token
from authlib.integrations.base_client.errors import OAuthError as AuthlibOAuthError

# Authlib now prefers the httpx2 fork and warns when it falls back to httpx, our chosen client
# (docs/architecture.md); the fallback is the same API.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="The httpx module is deprecated")
    from authlib.integrations.httpx_client import OAuth2Client, OAuth2ClientAuth
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jwt import JWTClaimsRegistry

from mailgrant.common.http import HttpSettings, ProxyError, http_client, http_client_options

ID_TOKEN_ALGORITHMS = [
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
]
ID_TOKEN_LEEWAY = 120


class ProviderError(Exception):
    """The provider refused or could not be asked. `error` is the OAuth error code."""

    def __init__(
        self,
        error: str,
        description: str = "",
        *,
        status: int | None = None,
        transient: bool = False,
    ) -> None:
        self.error = error
        self.description = description
        self.status = status
        self.transient = transient
        super().__init__(self.message)

    @property
    def message(self) -> str:
        return f"{self.error}: {self.description}" if self.description else self.error

    @property
    def aadsts(self) -> str | None:
        """Microsoft's own error code (e.g. AADSTS7000222), when the description has one."""
        found = re.search(r"\bAADSTS(\d+)\b", self.description)
        return f"AADSTS{found.group(1)}" if found else None

    @property
    def needs_reauthorization(self) -> bool:
        return self.error in {
            "invalid_grant",
            "interaction_required",
            "consent_required",
            "login_required",
        }


class ProviderUnreachable(ProviderError):
    def __init__(self, description: str) -> None:
        super().__init__("provider_unreachable", description, transient=True)


class IdTokenError(ProviderError):
    def __init__(self, description: str) -> None:
        super().__init__("invalid_id_token", description)


@dataclass(frozen=True)
class Credentials:
    client_id: str
    client_secret: str
    auth_method: str = "client_secret_basic"

    def __repr__(self) -> str:
        return f"Credentials(client_id={self.client_id!r}, client_secret=***)"


@dataclass(frozen=True)
class TokenSet:
    access_token: str
    token_type: str = "Bearer"
    refresh_token: str | None = None
    expires_at: float | None = None
    scope: str = ""
    id_token: str | None = None
    obtained_at: float = field(default_factory=time.time)

    def __repr__(self) -> str:
        return f"TokenSet(token_type={self.token_type!r}, expires_at={self.expires_at!r}, ***)"

    @classmethod
    def from_response(cls, data: Mapping[str, Any], *, now: float | None = None) -> TokenSet:
        now = time.time() if now is None else now
        access_token = data.get("access_token")
        if not isinstance(access_token, str) or not access_token:
            raise ProviderError("invalid_response", "The token response has no access_token.")
        expires_at: float | None = None
        if data.get("expires_in") not in (None, ""):
            try:
                expires_at = now + float(data["expires_in"])
            except (TypeError, ValueError):
                raise ProviderError("invalid_response", "expires_in is not a number.") from None
        elif data.get("expires_at") not in (None, ""):
            expires_at = float(data["expires_at"])
        scope = data.get("scope") or ""
        return cls(
            access_token=access_token,
            token_type=str(data.get("token_type") or "Bearer"),
            refresh_token=data.get("refresh_token") or None,
            expires_at=expires_at,
            scope=" ".join(scope) if isinstance(scope, list) else str(scope),
            id_token=data.get("id_token") or None,
            obtained_at=now,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TokenSet:
        names = cls.__dataclass_fields__.keys()
        return cls(**{k: v for k, v in data.items() if k in names})

    def after_refresh(self, previous: TokenSet) -> TokenSet:
        """This (refreshed) set, keeping what the provider did not send again."""
        return TokenSet(
            access_token=self.access_token,
            token_type=self.token_type,
            # Providers that do not rotate omit the refresh token: the old one stays valid.
            refresh_token=self.refresh_token or previous.refresh_token,
            expires_at=self.expires_at,
            scope=self.scope or previous.scope,
            id_token=self.id_token or previous.id_token,
            obtained_at=self.obtained_at,
        )

    @property
    def expiry(self) -> datetime | None:
        """`expires_at` as an aware UTC datetime."""
        return None if self.expires_at is None else datetime.fromtimestamp(self.expires_at, tz=UTC)

    @property
    def lifetime(self) -> float | None:
        return None if self.expires_at is None else self.expires_at - self.obtained_at


@dataclass(frozen=True)
class AuthorizationRequest:
    url: str
    state: str
    code_verifier: str
    nonce: str | None


@dataclass(frozen=True)
class ProviderMetadata:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    userinfo_endpoint: str = ""
    jwks_uri: str = ""
    iss_parameter_supported: bool = False
    token_endpoint_auth_methods: tuple[str, ...] = ()


def new_authorization(
    *,
    authorize_url: str,
    client_id: str,
    redirect_uri: str,
    scopes: Sequence[str],
    scope_separator: str = " ",
    extra_params: Mapping[str, str] | None = None,
) -> AuthorizationRequest:
    """A fresh authorization code + PKCE (S256) request, with a nonce when `openid` is asked."""
    state = generate_token(43)
    code_verifier = generate_token(64)
    nonce = generate_token(32) if "openid" in scopes else None
    params = dict(extra_params or {})
    if nonce:
        params["nonce"] = nonce
    client: OAuth2Client = OAuth2Client(
        client_id=client_id, redirect_uri=redirect_uri, code_challenge_method="S256"
    )
    with client:
        url, _ = client.create_authorization_url(
            authorize_url,
            state=state,
            code_verifier=code_verifier,
            scope=scope_separator.join(scopes),
            **params,
        )
    return AuthorizationRequest(url=url, state=state, code_verifier=code_verifier, nonce=nonce)


def exchange_code(
    *,
    http: HttpSettings,
    token_url: str,
    credentials: Credentials,
    code: str,
    redirect_uri: str,
    code_verifier: str,
) -> TokenSet:
    with _oauth_client(http, credentials) as client:
        data = _token_request(
            lambda: client.fetch_token(
                token_url,
                grant_type="authorization_code",
                code=code,
                redirect_uri=redirect_uri,
                code_verifier=code_verifier,
            )
        )
    return TokenSet.from_response(data)


def refresh(
    *,
    http: HttpSettings,
    token_url: str,
    credentials: Credentials,
    refresh_token: str,
) -> TokenSet:
    """One refresh_token grant. The result may lack a refresh token (see TokenSet.after_refresh).

    The worker refreshes many grants through the same client settings, so the request goes
    through a kept client (`_token_client`) with Authlib's client authentication made for the
    call, not through a new OAuth2Client per refresh (an httpx client, its auth and hooks built
    and torn down each time); nor one OAuth2Client kept: it holds the last token it saw, so
    it cannot be shared between threads."""
    client = _token_client(http)
    auth = OAuth2ClientAuth(
        client_id=credentials.client_id,
        client_secret=credentials.client_secret,
        auth_method=credentials.auth_method,
    )
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token}

    def call() -> dict[str, Any]:
        return _token_response(
            client.post(token_url, data=form, headers=_TOKEN_REQUEST_HEADERS, auth=auth)
        )

    return TokenSet.from_response(_token_request(call))


def discover(*, http: HttpSettings, issuer: str) -> ProviderMetadata:
    """OpenID Connect discovery (``/.well-known/openid-configuration``) of `issuer`."""
    issuer = issuer.rstrip("/")
    url = f"{issuer}/.well-known/openid-configuration"
    doc = _get_json(http, url, what="discovery document")
    missing = [k for k in ("issuer", "authorization_endpoint", "token_endpoint") if not doc.get(k)]
    if missing:
        raise ProviderError("invalid_discovery", f"{url} has no {', '.join(missing)}.")
    if str(doc["issuer"]).rstrip("/") != issuer:
        raise ProviderError(
            "invalid_discovery",
            f"{url} names issuer {doc['issuer']!r}, not {issuer!r}.",
        )
    return ProviderMetadata(
        issuer=str(doc["issuer"]),
        authorization_endpoint=str(doc["authorization_endpoint"]),
        token_endpoint=str(doc["token_endpoint"]),
        userinfo_endpoint=str(doc.get("userinfo_endpoint") or ""),
        jwks_uri=str(doc.get("jwks_uri") or ""),
        iss_parameter_supported=bool(doc.get("authorization_response_iss_parameter_supported")),
        token_endpoint_auth_methods=tuple(doc.get("token_endpoint_auth_methods_supported") or ()),
    )


def fetch_jwks(*, http: HttpSettings, jwks_uri: str) -> dict[str, Any]:
    doc = _get_json(http, jwks_uri, what="key set (JWKS)")
    if not isinstance(doc.get("keys"), list):
        raise ProviderError("invalid_jwks", f"{jwks_uri} holds no key set.")
    return doc


def fetch_userinfo(*, http: HttpSettings, url: str, access_token: str) -> dict[str, Any]:
    return _get_json(http, url, what="user data", bearer=access_token)


def verify_id_token(
    *,
    id_token: str,
    jwks: Mapping[str, Any],
    issuer: str,
    client_id: str,
    nonce: str | None,
    now: float | None = None,
) -> dict[str, Any]:
    """The ID token's claims once signature, iss, aud, exp (and nonce) all check out.

    An `issuer` containing ``{tenantid}`` (Microsoft's multi-tenant endpoints) must match the
    token's own ``tid`` claim.
    """
    try:
        key_set = KeySet.import_key_set(dict(jwks))  # type: ignore[arg-type]
        token = jwt.decode(id_token, key_set, algorithms=ID_TOKEN_ALGORITHMS)
    except (JoseError, ValueError, TypeError) as exc:
        raise IdTokenError(f"The ID token's signature does not verify ({exc}).") from None
    claims = dict(token.claims)
    if "{tenantid}" in issuer:
        tid = claims.get("tid")
        if not isinstance(tid, str) or not re.fullmatch(r"[0-9a-fA-F-]{36}", tid):
            raise IdTokenError("The ID token has no valid tid claim to check its issuer against.")
        issuer = issuer.replace("{tenantid}", tid)
    options: dict[str, Any] = {
        "iss": {"essential": True, "value": issuer},
        "aud": {"essential": True, "value": client_id},
        "exp": {"essential": True},
        "sub": {"essential": True},
    }
    if nonce:
        options["nonce"] = {"essential": True, "value": nonce}
    registry = JWTClaimsRegistry(
        now=int(now) if now is not None else None, leeway=ID_TOKEN_LEEWAY, **options
    )
    try:
        registry.validate(claims)
    except JoseError as exc:
        raise IdTokenError(f"The ID token was refused: {exc}.") from None
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    # OpenID Connect Core 3.1.3.7: a token authorized for another party (azp) is not ours,
    # whatever its audience; with several audiences, azp must be present and name us.
    if "azp" in claims and claims["azp"] != client_id:
        raise IdTokenError("The ID token was issued to another party (its azp is not us).")
    if len(audiences) > 1 and claims.get("azp") != client_id:
        raise IdTokenError("The ID token is meant for several parties and azp is not us.")
    return claims


def _oauth_client(http: HttpSettings, credentials: Credentials) -> OAuth2Client:
    options = http_client_options(http)
    options["transport"] = _shared_transport(options.pop("proxy") or "", bool(options["verify"]))
    return OAuth2Client(
        client_id=credentials.client_id,
        client_secret=credentials.client_secret,
        token_endpoint_auth_method=credentials.auth_method,
        **options,
    )


# As Authlib sends a token request.
_TOKEN_REQUEST_HEADERS = {
    "Accept": "application/json",
    "Content-Type": "application/x-www-form-urlencoded;charset=UTF-8",
}


class _NoCookies(DefaultCookiePolicy):
    """A kept client serves every grant of a client: no cookie one answer sets may ride along
    with another grant's request (a new client per request never kept any either)."""

    def set_ok(self, cookie: Cookie, request: Any) -> bool:
        return False


@functools.lru_cache(maxsize=64)
def _token_client(http: HttpSettings) -> httpx.Client:
    """The kept client for token requests with these settings (an httpx client is safe to use
    from several threads), on the shared transport of its proxy and TLS choice. A client whose
    settings change gets another; one no longer used leaves the cache as others come."""
    options = http_client_options(http)
    options["transport"] = _shared_transport(options.pop("proxy") or "", bool(options["verify"]))
    return httpx.Client(
        cookies=CookieJar(policy=_NoCookies()),
        **options,
    )


def _token_response(response: httpx.Response) -> dict[str, Any]:
    """The token endpoint's JSON object, or its OAuth error raised, as Authlib reads one: a
    server error or a body that is no JSON object (a gateway's page) is the HTTP error."""
    if response.status_code >= 500:
        response.raise_for_status()
    try:
        token = response.json()
    except ValueError:
        token = None
    if not isinstance(token, dict):
        response.raise_for_status()
        raise ValueError(
            f"Token endpoint response is not a JSON object (HTTP {response.status_code})."
        )
    if "error" in token:
        raise ProviderError(
            str(token["error"] or "error"), str(token.get("error_description") or "")
        )
    return token


class _SharedTransport(httpx.BaseTransport):
    """A connection pool shared by every token request through the same proxy with the same
    TLS choice: a refresh reuses a kept-alive connection to the token endpoint instead of a
    new TCP and TLS handshake each time. The clients built on it come and go; it stays."""

    def __init__(self, inner: httpx.HTTPTransport) -> None:
        self._inner = inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self._inner.handle_request(request)

    def close(self) -> None:
        pass  # shared: a client closing must not close the others' connections


@functools.lru_cache(maxsize=64)
def _shared_transport(proxy: str, verify: bool) -> _SharedTransport:
    return _SharedTransport(
        httpx.HTTPTransport(
            verify=_tls_context(verify), proxy=httpx.Proxy(proxy) if proxy else None
        )
    )


@functools.cache
def _tls_context(verify: bool) -> ssl.SSLContext:
    """One TLS context per choice, shared by every token request (a context is safe to share
    between threads): building one loads the whole CA bundle, many times the cost of a refresh
    at a nearby endpoint. As httpx builds it, without the environment (trust_env=False)."""
    return httpx.create_ssl_context(verify=verify, trust_env=False)


def _token_request(call: Any) -> dict[str, Any]:
    try:
        return dict(call())
    except AuthlibOAuthError as exc:
        raise ProviderError(str(exc.error or "error"), str(exc.description or "")) from None
    except httpx.HTTPStatusError as exc:
        status = exc.response.status_code
        raise ProviderError(
            "server_error" if status >= 500 else "invalid_response",
            f"The token endpoint answered HTTP {status}.",
            status=status,
            transient=status >= 500 or status == 429,
        ) from None
    except ValueError as exc:
        raise ProviderError("invalid_response", str(exc)) from None
    except ProxyError as exc:
        raise ProviderUnreachable(str(exc)) from None
    except httpx.HTTPError as exc:
        raise ProviderUnreachable(_transport_text(exc)) from None


def _get_json(
    http: HttpSettings, url: str, *, what: str, bearer: str | None = None
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
    try:
        with http_client(http) as client:
            response = client.get(url, headers=headers)
    except ProxyError as exc:
        raise ProviderUnreachable(str(exc)) from None
    except httpx.InvalidURL:
        raise ProviderError("invalid_url", f"{url!r} is not a valid URL.") from None
    except httpx.HTTPError as exc:
        raise ProviderUnreachable(f"{what} at {url}: {_transport_text(exc)}") from None
    if response.status_code != 200:
        raise ProviderError(
            "invalid_response",
            f"{what} at {url} answered HTTP {response.status_code}.",
            status=response.status_code,
            transient=response.status_code >= 500,
        )
    try:
        doc = response.json()
    except ValueError:
        raise ProviderError("invalid_response", f"{what} at {url} is not JSON.") from None
    if not isinstance(doc, dict):
        raise ProviderError("invalid_response", f"{what} at {url} is not a JSON object.")
    return doc


def _transport_text(exc: httpx.HTTPError) -> str:
    kind = type(exc).__name__
    detail = str(exc) or kind
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out ({kind})"
    if isinstance(exc, httpx.ConnectError):
        return f"cannot connect ({detail})"
    return f"{kind}: {detail}"
