"""The one place that builds HTTP clients for talking to providers: proxy, TLS and timeouts.

Django-free on purpose (protocol code uses it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

DEFAULT_TIMEOUT = 15.0
USER_AGENT = "mailgrant/0.1"

PROXY_SCHEMES = {"http", "https", "socks5", "socks5h"}


class ProxyError(ValueError):
    pass


def validate_proxy(proxy: str) -> str:
    """The proxy URL as httpx wants it, or ProxyError with a sentence for the admin."""
    proxy = proxy.strip()
    try:
        parts = urlsplit(proxy)
    except ValueError as exc:  # an unclosed IPv6 bracket, for one
        raise ProxyError(f"The proxy URL cannot be read ({exc}).") from exc
    if parts.scheme not in PROXY_SCHEMES:
        raise ProxyError(
            "A proxy must be a URL such as http://proxy.example.com:3128 "
            f"(scheme one of {', '.join(sorted(PROXY_SCHEMES))})."
        )
    try:
        port = parts.port
    except ValueError as exc:
        raise ProxyError("The proxy's port is not a number between 1 and 65535.") from exc
    if not parts.hostname or port == 0:
        raise ProxyError("The proxy URL has no host (expected scheme://host:port).")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ProxyError("A proxy URL has no path, query or fragment: scheme://host:port only.")
    return proxy


# Where a stored proxy URL has its password: the password itself is sealed apart, so the URL
# may be shown anywhere (API, command line, admin, errors).
PROXY_PASSWORD_MASK = "***"


def proxy_password_of(proxy: str) -> str:
    """The password in `proxy`'s userinfo (percent-encoded as given), or ""."""
    try:
        return urlsplit(proxy.strip()).password or ""
    except ValueError:
        return ""


def proxy_with_password(proxy: str, password: str) -> str:
    """`proxy` with its userinfo password replaced by `password` (the mask, or the real one);
    a proxy without a user name is returned as is."""
    proxy = proxy.strip()
    try:
        parts = urlsplit(proxy)
    except ValueError:
        return proxy
    if parts.username is None or "@" not in parts.netloc:
        return proxy
    userinfo, _, host = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    netloc = f"{user}:{password}@{host}" if password else f"{user}@{host}"
    return parts._replace(netloc=netloc).geturl()


def proxy_masked(proxy: str) -> str:
    """`proxy` as it may be stored and shown: a password becomes the mask."""
    if not proxy_password_of(proxy):
        return proxy.strip()
    return proxy_with_password(proxy, PROXY_PASSWORD_MASK)


def proxy_destination(proxy: str) -> tuple[str, str, str, int | None]:
    """Whom a proxy's credential goes to: scheme, user, host and port (not the password)."""
    try:
        parts = urlsplit(proxy.strip())
        port = parts.port
    except ValueError:
        return (proxy.strip(), "", "", None)
    return (parts.scheme.lower(), parts.username or "", (parts.hostname or "").lower(), port)


@dataclass(frozen=True)
class HttpSettings:
    """How to reach one provider: the client's proxy and TLS choice, and the time allowed."""

    proxy: str = ""
    verify: bool = True
    timeout: float = DEFAULT_TIMEOUT


def http_client_options(settings: HttpSettings) -> dict[str, Any]:
    """Keyword arguments for an httpx client (or a subclass, such as Authlib's OAuth2Client)."""
    return {
        "proxy": validate_proxy(settings.proxy) if settings.proxy else None,
        "verify": settings.verify,
        "timeout": httpx.Timeout(settings.timeout, connect=min(settings.timeout, 10.0)),
        "follow_redirects": False,
        # Only the client's own proxy applies, never HTTP(S)_PROXY from the environment.
        "trust_env": False,
        "headers": {"User-Agent": USER_AGENT, "Accept": "application/json"},
    }


def http_client(settings: HttpSettings) -> httpx.Client:
    return httpx.Client(**http_client_options(settings))
