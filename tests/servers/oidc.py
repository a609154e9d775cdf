"""Start the test OpenID provider (npm oidc-provider, tests/servers/oidc/server.mjs) and drive
its real login and consent pages over plain HTTP. No Django here."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
from collections import deque
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

HERE = Path(__file__).resolve().parent / "oidc"

# Mirrors the account table in server.mjs.
ACCOUNTS: dict[str, dict[str, Any]] = {
    "alice@example.test": {
        "password": "alice-password",
        "sub": "alice",
        "name": "Alice Example",
        "groups": ["staff", "support"],
    },
    "bob@example.test": {
        "password": "bob-password",
        "sub": "bob",
        "name": "Bob Example",
        "groups": ["support"],
    },
    "carol@example.test": {
        "password": "carol-password",
        "sub": "carol",
        "name": "Carol Example",
        "groups": [],
    },
}


class LoginRefused(Exception):
    """The provider's login page did not accept the login and password."""


def oidc_available() -> tuple[bool, str]:
    if shutil.which("node") is None:
        return (
            False,
            "node is not installed (make test installs it as root: apt-get install nodejs)",
        )
    if not (HERE / "node_modules" / "oidc-provider").is_dir():
        return (
            False,
            "oidc-provider is not installed: run `make peers` (npm ci in tests/servers/oidc)",
        )
    return True, ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class OidcServer:
    def __init__(
        self,
        *,
        access_token_ttl: int = 3600,
        clients: list[dict[str, Any]] | None = None,
        start_timeout: float = 20,
    ) -> None:
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "PORT": str(self.port),
            "ACCESS_TOKEN_TTL": str(access_token_ttl),
            "CLIENTS_JSON": json.dumps(clients or []),
            "NODE_NO_WARNINGS": "1",
        }
        self._stderr: deque[str] = deque(maxlen=200)
        self.process = subprocess.Popen(
            ["node", "server.mjs"],
            cwd=HERE,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        ready = threading.Event()
        threading.Thread(
            target=self._drain, args=(self.process.stderr, self._stderr), daemon=True
        ).start()

        def wait_ready() -> None:
            assert self.process.stdout is not None
            for line in self.process.stdout:
                if line.startswith("READY"):
                    ready.set()
                    break
            for _ in self.process.stdout:  # keep draining
                pass

        threading.Thread(target=wait_ready, daemon=True).start()
        if not ready.wait(start_timeout):
            self.stop()
            raise RuntimeError("oidc-provider did not start:\n" + "".join(self._stderr))
        self.http = httpx.Client(base_url=self.issuer, timeout=10)

    @staticmethod
    def _drain(stream: Any, sink: deque[str]) -> None:
        for line in stream:
            sink.append(line)

    @property
    def log(self) -> str:
        return "".join(self._stderr)

    def register_client(
        self,
        *,
        client_id: str,
        client_secret: str,
        redirect_uris: list[str],
        token_endpoint_auth_method: str = "client_secret_basic",
        grant_types: tuple[str, ...] = ("authorization_code", "refresh_token"),
        **extra: Any,
    ) -> None:
        metadata = {
            "client_id": client_id,
            "client_secret": client_secret,
            "redirect_uris": redirect_uris,
            "grant_types": list(grant_types),
            "token_endpoint_auth_method": token_endpoint_auth_method,
            **extra,
        }
        self.http.post("/__test/clients", json=metadata).raise_for_status()

    def stats(self) -> dict[str, Any]:
        return dict(self.http.get("/__test/stats").raise_for_status().json())

    def reset_stats(self) -> None:
        self.http.post("/__test/stats/reset").raise_for_status()

    def set_access_token_ttl(self, seconds: int) -> None:
        self.http.post("/__test/ttl", json={"access_token_ttl": seconds}).raise_for_status()

    def introspect(self, token: str, *, client_id: str, client_secret: str) -> dict[str, Any]:
        response = self.http.post(
            "/token/introspection", data={"token": token}, auth=(client_id, client_secret)
        )
        return dict(response.raise_for_status().json())

    def login_headless(
        self, authorize_url: str, *, login: str, password: str, approve: bool = True
    ) -> str:
        return login_headless(authorize_url, login=login, password=password, approve=approve)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
        if hasattr(self, "http"):
            self.http.close()

    def __enter__(self) -> OidcServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Forms(HTMLParser):
    """The forms and links of a page: enough to submit the provider's login and consent."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append(
                {"action": a.get("action", ""), "method": a.get("method", "get"), "fields": {}}
            )
        elif tag == "input" and self.forms and a.get("name"):
            self.forms[-1]["fields"][a["name"]] = a.get("value", "")
        elif tag == "a" and a.get("href"):
            self.links.append(a["href"])


def login_headless(
    authorize_url: str,
    *,
    login: str,
    password: str,
    approve: bool = True,
    http: httpx.Client | None = None,
) -> str:
    """Follow the provider from `authorize_url` through its login and consent pages and return
    the redirect that leaves the provider (to the client's redirect_uri), without requesting it."""
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(authorize_url))
    client = http or httpx.Client(timeout=10)
    try:
        response = client.get(authorize_url)
        logins = 0
        for _ in range(20):
            if response.is_redirect:
                target = urljoin(str(response.url), response.headers["location"])
                if not target.startswith(origin + "/"):
                    return target
                response = client.get(target)
                continue
            if response.status_code != 200:
                raise RuntimeError(
                    f"provider answered {response.status_code}: {response.text[:300]}"
                )
            page = _Forms()
            page.feed(response.text)
            form = next((f for f in page.forms if f["fields"].get("prompt")), None)
            if form is None:
                raise RuntimeError(
                    f"no login or consent form at {response.url}: {response.text[:300]}"
                )
            action = urljoin(str(response.url), form["action"])
            fields = dict(form["fields"])
            if fields["prompt"] == "login":
                logins += 1
                if logins > 1:
                    raise LoginRefused(f"the provider refused the login {login!r}")
                fields.update(login=login, password=password)
            elif not approve:
                abort = next(link for link in page.links if link.endswith("/abort"))
                response = client.get(urljoin(str(response.url), abort))
                continue
            response = client.post(action, data=fields)
        raise RuntimeError("too many steps at the provider")
    finally:
        if http is None:
            client.close()
