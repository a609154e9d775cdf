"""A proxy's password is sealed in the vault and shown as user:***@host:port everywhere (read
keys, `client show`, the admin page, error texts), and still sent to the proxy: a real
forward proxy on a loopback socket that asks for it, in front of the real oidc-provider."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.urls import reverse

from mailgrant.oauth.models import OAuthClient
from tests.servers.ports import free_port
from tests.servers.proxy import AuthProxy

pytestmark = pytest.mark.django_db

CANARY = "Pr0xy-canary-9b3e"
USER = "proxyuser"


@pytest.fixture
def proxy() -> Iterator[AuthProxy]:
    with AuthProxy(user=USER, password=CANARY) as server:
        yield server


@pytest.fixture
def proxied(oidc_client: Any, validate_headless: Any, proxy: AuthProxy) -> OAuthClient:
    """A client reaching the real provider through the proxy, validated as alice."""
    client = oidc_client(proxy=f"http://{USER}:{CANARY}@127.0.0.1:{proxy.port}")
    validate_headless(client)
    return client


def _masked(proxy: AuthProxy) -> str:
    return f"http://{USER}:***@127.0.0.1:{proxy.port}"


def test_the_proxy_gets_its_credential_and_the_client_works(api, proxied, proxy) -> None:
    refreshed = api.post(f"/oauth-clients/{proxied.pk}/refresh")
    assert refreshed.status_code == 200, refreshed.content
    expected = "Basic " + base64.b64encode(f"{USER}:{CANARY}".encode()).decode()
    relayed = [r for r in proxy.requests if r.status != 407]
    assert relayed and all(r.proxy_authorization == expected for r in relayed)
    assert any(r.url.endswith("/token") for r in relayed)


def test_never_stored_in_the_clear(proxied) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT proxy, proxy_password FROM oauth_oauthclient")
        rows = cursor.fetchall()
    assert rows and all(CANARY not in str(row) for row in rows)
    proxied.refresh_from_db()
    assert proxied.proxy_password.reveal() == CANARY


def test_a_read_key_sees_the_mask(api_as, proxied, proxy) -> None:
    reader = api_as("read")
    one = reader.get(f"/oauth-clients/{proxied.pk}")
    assert one.json()["proxy"] == _masked(proxy)
    listed = reader.get("/oauth-clients")
    for answer in (one, listed):
        assert answer.status_code == 200 and CANARY not in answer.content.decode()


def test_client_show_shows_the_mask(proxied, proxy) -> None:
    for extra in ((), ("--json",)):
        out = io.StringIO()
        call_command("client", "show", proxied.name, *extra, stdout=out)
        assert _masked(proxy) in out.getvalue() and CANARY not in out.getvalue()


def test_the_admin_page_shows_the_mask(admin_client, proxied, proxy) -> None:
    html = admin_client.get(
        reverse("admin:oauth_oauthclient_change", args=[proxied.pk])
    ).content.decode()
    assert _masked(proxy) in html and CANARY not in html


def test_the_mask_keeps_it_and_other_changes_keep_it(api, proxied, proxy) -> None:
    patched = api.patch(f"/oauth-clients/{proxied.pk}", {"proxy": _masked(proxy)})
    assert patched.status_code == 200 and patched.json()["notice"] == ""
    assert api.patch(f"/oauth-clients/{proxied.pk}", {"scope_separator": " "}).status_code == 200
    assert api.post(f"/oauth-clients/{proxied.pk}/refresh").status_code == 200


def test_the_mask_for_another_proxy_is_refused(api, proxied) -> None:
    elsewhere = f"http://{USER}:***@127.0.0.1:{free_port()}"
    refused = api.patch(f"/oauth-clients/{proxied.pk}", {"proxy": elsewhere})
    assert refused.status_code == 400, refused.content
    assert "proxy" in {f["field"] for f in refused.json()["fields"]}
    proxied.refresh_from_db()
    assert proxied.proxy_password.reveal() == CANARY


def test_error_texts_carry_no_password(api, oidc) -> None:
    dead = f"http://{USER}:{CANARY}@127.0.0.1:{free_port()}"
    body = {"name": "dead", "provider": "generic", "client_id": "x", "issuer": oidc.issuer}
    answer = api.post("/oauth-clients", {**body, "proxy": dead})
    assert answer.status_code in (400, 502, 503), answer.content
    assert CANARY not in answer.content.decode()
    bad = api.post("/oauth-clients", {**body, "proxy": f"ftp://{USER}:{CANARY}@proxy:1"})
    assert bad.status_code == 400 and CANARY not in bad.content.decode()


def test_the_cli_takes_the_password_from_stdin_never_argv(api, proxied, proxy) -> None:
    import sys

    from django.core.management import CommandError

    with pytest.raises(CommandError, match="process list"):
        call_command("client", "update", proxied.name, "--proxy", f"http://u:{CANARY}@h:1")
    url = f"http://{USER}@127.0.0.1:{proxy.port}"
    stdin, sys.stdin = sys.stdin, io.StringIO(CANARY + "\n")
    try:
        out = io.StringIO()
        call_command(
            "client", "update", proxied.name, "--proxy", url, "--proxy-password-stdin", stdout=out
        )
    finally:
        sys.stdin = stdin
    assert CANARY not in out.getvalue()
    proxied.refresh_from_db()
    assert proxied.proxy == _masked(proxy) and proxied.proxy_password.reveal() == CANARY
    assert api.post(f"/oauth-clients/{proxied.pk}/refresh").status_code == 200
