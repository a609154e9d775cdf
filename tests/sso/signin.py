"""Signing in headlessly: the login page's button (POST), the provider's real login and
consent pages over HTTP, then the redirect back into mailgrant, all with one Django test
client (so the state stays bound to its session)."""

from __future__ import annotations

import html
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.servers.oidc import ACCOUNTS


def sign_in_start(browser: Any, client: Any, *, next_url: str = "") -> str:
    """Press the client's button; the provider's authorize URL."""
    response = browser.post(f"/sso/{client.pk}/start/", {"next": next_url})
    assert response.status_code == 302, response.content[:500]
    return str(response["Location"])


def callback_path(redirect: str) -> str:
    parts = urlsplit(redirect)
    return f"{parts.path}?{parts.query}"


def sign_in(
    browser: Any, oidc: Any, client: Any, login: str = "alice@example.test", next_url: str = ""
) -> Any:
    """The whole sign-in; the response of mailgrant's callback."""
    url = sign_in_start(browser, client, next_url=next_url)
    redirect = oidc.login_headless(url, login=login, password=ACCOUNTS[login]["password"])
    return browser.get(callback_path(redirect))


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def page_text(response: Any) -> str:
    """The response body as the person reads it (entities such as &#x27; decoded)."""
    return html.unescape(response.content.decode())
