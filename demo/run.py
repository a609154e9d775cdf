"""`make demo`: the whole product on one machine in a few minutes, with no Azure or Google tenant.

It starts the peers the test suite knows how to start (oidc-provider as the OAuth provider,
Debian's Dovecot as the mail server), a fresh mailgrant home under ./var/demo with a generic
client wired to that provider, an incoming IMAP mailbox on IDLE and an outgoing SMTP one, an
administrator, and `mailgrant serve` (web and one worker). A message arrives every few seconds.
Ctrl-C (or `q`) stops everything it started.

Everything here goes through mailgrant's own command line, as an administrator would."""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any

import httpx
from tests.servers.dovecot import DovecotServer, dovecot_available
from tests.servers.oidc import ACCOUNTS, OidcServer, oidc_available

ROOT = Path(__file__).resolve().parent.parent
MAILGRANT = str(Path(sys.executable).with_name("mailgrant"))
ACCOUNT = "alice@example.test"
CLIENT = "Demo provider"
INCOMING = "support"
OUTGOING = "support-out"
# Dovecot asks the provider whether a token is live (RFC 7662) as this client.
DOVECOT_CLIENT = ("dovecot-resource-server", "dovecot-introspection-secret")


class DemoError(Exception):
    pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make demo", description=__doc__)
    parser.add_argument("--listen", default=os.environ.get("MAILGRANT_LISTEN", "127.0.0.1:8000"))
    parser.add_argument("--home", default=os.environ.get("MAILGRANT_HOME", "var/demo"))
    parser.add_argument("--every", type=float, default=5.0, help="seconds between messages")
    parser.add_argument(
        "--token-ttl",
        type=int,
        default=120,
        help="access token lifetime at the provider, short so refreshes are seen",
    )
    args = parser.parse_args(argv)
    try:
        with Demo(home=Path(args.home), listen=args.listen, token_ttl=args.token_ttl) as demo:
            demo.run(every=args.every)
    except DemoError as exc:
        print(f"make demo: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    print("Demo stopped: the provider, Dovecot and mailgrant are down.", flush=True)
    return 0


class Demo:
    def __init__(self, *, home: Path, listen: str, token_ttl: int) -> None:
        for available, reason in (oidc_available(), dovecot_available()):
            if not available:
                raise DemoError(reason)
        self.home = home.resolve()
        self.listen = listen
        self.base_url = f"http://{listen}"
        self.token_ttl = token_ttl
        self.stop = threading.Event()
        self.oidc: OidcServer | None = None
        self.dovecot: DovecotServer | None = None
        self.serve: subprocess.Popen[str] | None = None
        self.delivered = 0

    # --- set-up ---------------------------------------------------------------------------

    def __enter__(self) -> Demo:
        try:
            self._start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _start(self) -> None:
        shutil.rmtree(self.home, ignore_errors=True)  # a fresh start: the peers forget too
        self.home.mkdir(parents=True, mode=0o700)
        self.env = {
            **os.environ,
            "MAILGRANT_HOME": str(self.home),
            "MAILGRANT_LISTEN": self.listen,
            "MAILGRANT_BASE_URL": self.base_url,
            "MAILGRANT_LOG_LEVEL": os.environ.get("MAILGRANT_LOG_LEVEL", "INFO"),
            "DJANGO_SETTINGS_MODULE": "mailgrant.config.settings",
        }
        self.env.pop("MAILGRANT_DATABASE_URL", None)
        print("Starting the OAuth provider (oidc-provider) and the mail server (Dovecot)...")
        self.oidc = OidcServer(access_token_ttl=self.token_ttl)
        client_id, secret = DOVECOT_CLIENT
        self.oidc.register_client(
            client_id=client_id, client_secret=secret, redirect_uris=["http://127.0.0.1:1/unused"]
        )
        introspection = self.oidc.issuer.replace("http://", f"http://{client_id}:{secret}@")
        self.dovecot = DovecotServer(introspection_url=f"{introspection}/token/introspection")

        self._mailgrant("migrate", "--noinput")
        self.admin_password = secrets.token_urlsafe(12)
        self._mailgrant(
            "createsuperuser",
            "--noinput",
            "--username",
            "admin",
            "--email",
            "admin@example.test",
            extra_env={"DJANGO_SUPERUSER_PASSWORD": self.admin_password},
        )
        client_secret = secrets.token_urlsafe(24)
        added = self._mailgrant(
            "client",
            "add",
            "--name",
            CLIENT,
            "--provider",
            "generic",
            "--issuer",
            self.oidc.issuer,
            "--client-id",
            "mailgrant-demo",
            "--scope",
            "openid email offline_access mail",
            "--client-secret-stdin",
            "--json",
            stdin=client_secret,
        )
        redirect_uri = json.loads(added)["redirect_uri"]
        self.oidc.register_client(
            client_id="mailgrant-demo", client_secret=client_secret, redirect_uris=[redirect_uri]
        )
        common = ["--host", "127.0.0.1", "--security", "none", "--username", ACCOUNT]
        self._mailgrant(
            "mailbox", "add", "--name", INCOMING, "--protocol", "imap",
            "--port", str(self.dovecot.imap_port), *common, "--oauth-client", CLIENT,
            "--poll-interval", "3600", "--push", "idle", "--post-fetch-action", "move:Archive",
        )  # fmt: skip
        self._mailgrant(
            "mailbox", "add", "--name", OUTGOING, "--direction", "outgoing", "--protocol", "smtp",
            "--port", str(self.dovecot.submission_port), *common, "--oauth-client", CLIENT,
        )  # fmt: skip
        print("Starting mailgrant (web server and one worker)...")
        self.serve = subprocess.Popen(
            [MAILGRANT, "serve", "--listen", self.listen],
            env=self.env,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches us; we stop serve and its worker ourselves
        )
        self._wait_for_web()

    def _mailgrant(
        self, *args: str, stdin: str | None = None, extra_env: dict[str, str] | None = None
    ) -> str:
        result = subprocess.run(
            [MAILGRANT, *args],
            env={**self.env, **(extra_env or {})},
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if result.returncode != 0:
            raise DemoError(f"mailgrant {' '.join(args[:2])} failed: {result.stderr.strip()}")
        return result.stdout

    def _wait_for_web(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.serve is not None
            if self.serve.poll() is not None:
                raise DemoError("mailgrant serve stopped; see its output above")
            try:
                httpx.get(f"{self.base_url}/admin/login/", timeout=2)
                return
            except httpx.TransportError:
                time.sleep(0.3)
        raise DemoError(f"mailgrant serve did not answer on {self.base_url}")

    # --- running --------------------------------------------------------------------------

    def run(self, *, every: float) -> None:
        assert self.oidc is not None
        print(
            f"""
  mailgrant demo is running.

  Admin:      {self.base_url}/admin/
  Login:      admin / {self.admin_password}
  Provider:   {self.oidc.issuer}  (its demo account: {ACCOUNT} / {ACCOUNTS[ACCOUNT]["password"]})

  1. Open the admin, Mailboxes -> {INCOMING} -> Authorize, sign in at the provider as
     {ACCOUNT} and consent.
  2. Watch mail arrive (Messages; a new one every {every:g} s, fetched as it lands: IMAP IDLE).
  3. Type r and Enter here to revoke the grant at the provider (the account owner removing
     the app's access); the dashboard on the admin's
     front page says so within a token lifetime ({self.token_ttl} s) and names the fix:
     Re-authorize.
  Ctrl-C (or q and Enter) stops everything.
""",
            flush=True,
        )
        threading.Thread(target=self._keyboard, daemon=True).start()
        while not self.stop.is_set():
            self._deliver()
            if self.serve is not None and self.serve.poll() is not None:
                raise DemoError("mailgrant serve stopped; see its output above")
            self.stop.wait(every)

    def _deliver(self) -> None:
        assert self.dovecot is not None
        self.delivered += 1
        message = EmailMessage()
        message["From"] = f"Customer {self.delivered} <customer{self.delivered}@example.org>"
        message["To"] = ACCOUNT
        message["Subject"] = f"Demo ticket #{self.delivered}"
        message["Message-ID"] = make_msgid(domain="demo.example.org")
        message.set_content(f"Hello support, this is demo message {self.delivered}.\n")
        try:
            self.dovecot.deliver(ACCOUNT, message.as_bytes())
        except OSError as exc:
            print(f"(delivery {self.delivered} failed: {exc})", flush=True)

    def _keyboard(self) -> None:
        for line in sys.stdin:
            command = line.strip().lower()
            if command == "r":
                print(self.revoke(), flush=True)
            elif command == "q":
                self.stop.set()
                return

    def revoke(self) -> str:
        """End the account's grant at the provider, as its owner removing the app's access on
        the provider's account page would."""
        assert self.oidc is not None
        sub = ACCOUNTS[ACCOUNT]["sub"]
        if not self.oidc.revoke_access(sub, client_id="mailgrant-demo"):
            return "No grant to revoke at the provider yet: press Authorize first."
        return "Revoked at the provider: watch the dashboard on the admin's front page."

    # --- tear-down ------------------------------------------------------------------------

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        if self.serve is not None and self.serve.poll() is None:
            os.killpg(self.serve.pid, signal.SIGTERM)
            try:
                self.serve.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.serve.pid, signal.SIGKILL)
                self.serve.wait(timeout=10)
        if self.dovecot is not None:
            self.dovecot.stop()
        if self.oidc is not None:
            self.oidc.stop()


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt  # SIGTERM stops the demo as Ctrl-C does, cleaning up


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _interrupt)
    sys.exit(main())
