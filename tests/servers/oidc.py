"""Start the test OpenID provider (npm oidc-provider, tests/servers/oidc/server.mjs) and drive
its real login and consent pages over plain HTTP. No Django here."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import threading
import time
from collections import deque
from collections.abc import Iterable
from html.parser import HTMLParser
from pathlib import Path
from typing import IO, Any
from urllib.parse import urljoin, urlsplit

import httpx

from tests.servers.ports import free_port

HERE = Path(__file__).resolve().parent / "oidc"
OIDC_PROVIDER_VERSION = "9.13.3"

# Mirrors the account table in server.mjs: login -> password and claims.
ACCOUNTS: dict[str, dict[str, Any]] = {
    "alice@example.test": {
        "password": "alice-password",
        "sub": "alice",
        "email": "alice@example.test",
        "name": "Alice Example",
        "given_name": "Alice",
        "family_name": "Example",
        "groups": ["staff", "support"],
        "address": {"locality": "Springfield", "country": "US"},
    },
    "bob@example.test": {
        "password": "bob-password",
        "sub": "bob",
        "email": "bob@example.test",
        "name": "Bob Example",
        "given_name": "Bob",
        "family_name": "Example",
        "groups": ["support"],
    },
    "carol@example.test": {
        "password": "carol-password",
        "sub": "carol",
        "email": "carol@example.test",
        "name": "Carol Example",
        "given_name": "Carol",
        "family_name": "Example",
        "groups": [],
    },
}


class LoginRefused(Exception):
    """The provider's login page did not accept the login and password."""


def oidc_available() -> tuple[bool, str]:
    """Whether node and the pinned oidc-provider are installed; the reason when not."""
    if shutil.which("node") is None:
        return (
            False,
            "node is not installed (make test installs it as root: apt-get install nodejs)",
        )
    installed = HERE / "node_modules" / "oidc-provider" / "package.json"
    if not installed.is_file():
        return (
            False,
            "oidc-provider is not installed: run `make peers` (npm ci in tests/servers/oidc)",
        )
    version = json.loads(installed.read_text()).get("version")
    if version != OIDC_PROVIDER_VERSION:
        return (
            False,
            f"oidc-provider {version} is installed, not {OIDC_PROVIDER_VERSION}: "
            "run `make peers` (npm ci in tests/servers/oidc)",
        )
    return True, ""


class OidcServer:
    """`node server.mjs` on a free loopback port; stopped by stop(), `with`, or at exit."""

    def __init__(
        self,
        *,
        access_token_ttl: int = 3600,
        id_token_ttl: int = 3600,
        refresh_token_ttl: int = 14 * 24 * 3600,
        clients: Iterable[dict[str, Any]] | None = None,
        start_timeout: float = 30,
    ) -> None:
        self._stderr: deque[str] = deque(maxlen=200)
        self.process: subprocess.Popen[str] | None = None
        settings = {
            "ACCESS_TOKEN_TTL": str(access_token_ttl),
            "ID_TOKEN_TTL": str(id_token_ttl),
            "REFRESH_TOKEN_TTL": str(refresh_token_ttl),
            "CLIENTS_JSON": json.dumps(list(clients or ())),
        }
        # The free port can be taken between our probe and node's listen: try again then.
        for _attempt in range(3):
            self.port = free_port()
            self.issuer = f"http://127.0.0.1:{self.port}"
            if self._start(settings, start_timeout):
                break
            if "EADDRINUSE" not in self.log:
                raise RuntimeError(f"oidc-provider did not start:\n{self.log}")
        else:
            raise RuntimeError(f"oidc-provider found no free port:\n{self.log}")
        atexit.register(self.stop)
        self.http = httpx.Client(base_url=self.issuer, timeout=10)

    def _start(self, settings: dict[str, str], timeout: float) -> bool:
        self._stderr.clear()
        env = {
            **os.environ,
            **settings,
            "PORT": str(self.port),
            "EXIT_WITH_STDIN": "1",  # node goes away with us, even if we are killed
            "NODE_NO_WARNINGS": "1",
        }
        self.process = process = subprocess.Popen(
            ["node", "server.mjs"],
            cwd=HERE,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        ready = threading.Event()

        def watch_stdout(stream: IO[str]) -> None:
            for line in stream:
                if line.startswith("READY "):
                    ready.set()  # then keep draining

        threading.Thread(target=watch_stdout, args=(process.stdout,), daemon=True).start()
        threading.Thread(target=self._drain, args=(process.stderr,), daemon=True).start()
        deadline = time.monotonic() + timeout
        while not ready.wait(0.05):
            if process.poll() is not None:
                time.sleep(0.1)  # let the stderr thread catch the last lines
                return False
            if time.monotonic() > deadline:
                self._kill()
                self._stderr.append(f"(no READY line within {timeout:g} s)\n")
                return False
        return True

    def _drain(self, stream: IO[str]) -> None:
        for line in stream:
            self._stderr.append(line)

    @property
    def log(self) -> str:
        """The provider's recent stderr."""
        return "".join(self._stderr)

    # --- /__test/ control endpoints ----------------------------------------------------------

    def register_client(
        self,
        *,
        client_id: str,
        client_secret: str,
        redirect_uris: Iterable[str],
        token_endpoint_auth_method: str = "client_secret_basic",
        grant_types: Iterable[str] = ("authorization_code", "refresh_token"),
        **extra: Any,
    ) -> None:
        """Register or replace a client (any other client metadata goes in `extra`)."""
        metadata = {
            "client_id": client_id,
            "client_secret": client_secret,
            "redirect_uris": list(redirect_uris),
            "grant_types": list(grant_types),
            "token_endpoint_auth_method": token_endpoint_auth_method,
            **extra,
        }
        response = self.http.post("/__test/clients", json=metadata)
        if response.status_code != 200:
            raise ValueError(f"client {client_id!r} refused: {response.text}")

    def set_claims(self, sub: str, claims: dict[str, Any]) -> None:
        """Override claims of the account `sub` from now on (None removes one; {} resets)."""
        self.http.post("/__test/claims", json={"sub": sub, "claims": claims}).raise_for_status()

    def stats(self) -> dict[str, Any]:
        """token (successes by grant_type), refresh_by_client, token_errors (by error code),
        grants_revoked, introspections, revocations."""
        return dict(self.http.get("/__test/stats").raise_for_status().json())

    def reset_stats(self) -> None:
        self.http.post("/__test/stats/reset").raise_for_status()

    def revoke_access(self, sub: str, *, client_id: str = "") -> int:
        """End every grant of account `sub` (at `client_id`, or at every client), as its owner
        removing an app's access on the provider's account page does; how many ended."""
        body = {"sub": sub, "client_id": client_id}
        return int(
            self.http.post("/__test/revoke-access", json=body).raise_for_status().json()["revoked"]
        )

    def set_access_token_ttl(self, seconds: int) -> None:
        self.http.post("/__test/ttl", json={"access_token_ttl": seconds}).raise_for_status()

    # --- conveniences ------------------------------------------------------------------------

    def introspect(self, token: str, *, client_id: str, client_secret: str) -> dict[str, Any]:
        response = self.http.post(
            "/token/introspection", data={"token": token}, auth=(client_id, client_secret)
        )
        return dict(response.raise_for_status().json())

    def login_headless(
        self,
        authorize_url: str,
        *,
        login: str,
        password: str,
        approve: bool = True,
        http: httpx.Client | None = None,
    ) -> str:
        return login_headless(
            authorize_url, login=login, password=password, approve=approve, http=http
        )

    # --- lifetime ----------------------------------------------------------------------------

    def _kill(self) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    def stop(self) -> None:
        self._kill()
        if self.process is not None and self.process.stdin is not None:
            self.process.stdin.close()
        if hasattr(self, "http"):
            self.http.close()
        atexit.unregister(self.stop)

    def __enter__(self) -> OidcServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- the provider's login and consent pages, over plain HTTP -------------------------------


class _Page(HTMLParser):
    """The forms and links of a page: enough to submit the provider's login and consent."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            method = a.get("method", "get").lower()
            self.forms.append({"action": a.get("action", ""), "method": method, "fields": {}})
        elif tag == "input" and self.forms and a.get("name"):
            self.forms[-1]["fields"][a["name"]] = a.get("value", "")
        elif tag == "a" and a.get("href"):
            self.links.append(a["href"])


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc


def login_headless(
    authorize_url: str,
    *,
    login: str,
    password: str,
    approve: bool = True,
    http: httpx.Client | None = None,
) -> str:
    """Follow the provider from `authorize_url` through its login and consent pages and return
    the redirect that leaves the provider (to the client's redirect_uri), without requesting it.

    `approve=False` cancels at the consent page (the provider answers error=access_denied).
    Raises LoginRefused when the login form comes back after the login and password.
    Pass `http` to keep the provider's session cookies between calls."""
    origin = _origin(authorize_url)
    client = http or httpx.Client(timeout=10)
    try:
        response = client.get(authorize_url, follow_redirects=False)
        logged_in = False
        for _ in range(20):
            url = str(response.url)
            if response.is_redirect:
                target = urljoin(url, response.headers["location"])
                if _origin(target) != origin:
                    return target
                response = client.get(target, follow_redirects=False)
                continue
            if response.status_code != 200:
                raise RuntimeError(
                    f"provider answered {response.status_code}: {response.text[:300]}"
                )
            page = _Page()
            page.feed(response.text)
            # devInteractions: one POST form per step, told apart by a hidden `prompt` field.
            form = next((f for f in page.forms if f["fields"].get("prompt")), None)
            if form is None:
                raise RuntimeError(f"no login or consent form at {url}: {response.text[:300]}")
            fields = dict(form["fields"])
            if fields["prompt"] == "login":
                if logged_in:
                    raise LoginRefused(f"the provider refused the login {login!r}")
                logged_in = True
                fields.update(login=login, password=password)
            elif not approve:
                abort = next((link for link in page.links if link.endswith("/abort")), None)
                if abort is None:
                    raise RuntimeError(f"no cancel link at {url}")
                response = client.get(urljoin(url, abort), follow_redirects=False)
                continue
            response = client.post(
                urljoin(url, form["action"]), data=fields, follow_redirects=False
            )
        raise RuntimeError("too many steps at the provider")
    finally:
        if http is None:
            client.close()
