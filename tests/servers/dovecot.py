"""A throwaway Debian Dovecot on loopback ports: IMAP, POP3 and submission, with a passdb that
validates XOAUTH2 / OAUTHBEARER tokens by introspection at the test OpenID provider and a
passwd-file passdb for password logins. Submission relays to a small SMTP server that delivers
into the same Maildirs over LMTP, so a sent message can be fetched back. No Django here."""

from __future__ import annotations

import os
import shutil
import smtplib
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

from tests.servers.ports import free_port

DOVECOT = "/usr/sbin/dovecot"

# pat first (tests take the first one); the others' passwords hold what a login must quote or
# encode: quotes, backslashes, spaces, non-ASCII (no ":", which ends a passwd-file field).
PASSWORD_USERS = {
    "pat@example.test": "pat-password",
    "quinn@example.test": 'Qu"o\\ted pass\\"word 42',
    "zoe@example.test": 'Pässwörd "ü" \\ Ω 42',
}


def dovecot_available() -> tuple[bool, str]:
    if not Path(DOVECOT).exists():
        return False, "Dovecot is not installed (make test installs it as root: dovecot-core ...)"
    if os.geteuid() != 0:
        return False, "the test Dovecot runs as root (it switches users itself)"
    return True, ""


def _wait_for_port(port: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


class _LmtpRelay:
    """Where submission relays: an SMTP server that hands every message to Dovecot's LMTP, so
    sent mail lands in the recipients' Maildirs (Dovecot's LMTP itself refuses EHLO)."""

    def __init__(self, dovecot: DovecotServer) -> None:
        self.dovecot = dovecot

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
        self.dovecot.relayed.append((envelope.mail_from, list(envelope.rcpt_tos)))
        try:
            # One recipient a transaction: LMTP answers DATA once per recipient, and smtplib
            # reads only one answer.
            for recipient in envelope.rcpt_tos:
                with smtplib.LMTP("127.0.0.1", self.dovecot.lmtp_port, timeout=30) as lmtp:
                    lmtp.sendmail(envelope.mail_from, [recipient], envelope.original_content)
        except smtplib.SMTPException as exc:
            return f"451 4.3.0 relay to LMTP failed: {exc}"
        return "250 2.0.0 Delivered to the test Maildir"


class DovecotServer:
    def __init__(self, *, introspection_url: str, relay_port: int | None = None) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="mg-dc-"))
        self.root.chmod(0o755)  # Dovecot's unprivileged processes must reach their sockets
        self.imap_port, self.imaps_port = free_port(), free_port()
        self.pop3_port, self.submission_port, self.lmtp_port = free_port(), free_port(), free_port()
        self.relay_port = relay_port or free_port()
        self.mail_root = self.root / "mail"
        self.mail_root.mkdir()
        shutil.chown(self.mail_root, "dovecot", "dovecot")  # mail processes run as dovecot
        self.log_path = self.root / "dovecot.log"
        self.config = self.root / "dovecot.conf"
        (self.root / "passwd").write_text(
            "".join(f"{user}:{{PLAIN}}{pw}::::::\n" for user, pw in PASSWORD_USERS.items()),
            encoding="utf-8",
        )
        (self.root / "oauth2.conf.ext").write_text(
            "\n".join(
                [
                    "introspection_mode = post",
                    f"introspection_url = {introspection_url}",
                    "username_attribute = email",
                    "active_attribute = active",
                    "active_value = true",
                    "tokeninfo_url = ",
                    "",
                ]
            )
        )
        self.relayed: list[tuple[str, list[str]]] = []
        # A probed free port can be taken before it is bound (another test process, an outgoing
        # connection's local port): the relay and Dovecot each try again on fresh ports then.
        for attempt in range(3):
            try:
                self._relay = Controller(
                    _LmtpRelay(self), hostname="127.0.0.1", port=self.relay_port
                )
                self._relay.start()
                break
            except OSError:
                if relay_port or attempt == 2:
                    raise
                self.relay_port = free_port()
        for attempt in range(3):
            self.config.write_text(self._config())
            # The daemon keeps its stdio: pipes here would never reach EOF.
            started = subprocess.run(
                [DOVECOT, "-c", str(self.config)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=self.root.joinpath("startup.err").open("w"),
            )
            if started.returncode == 0:
                break
            error = (self.root / "startup.err").read_text()
            if "listen" not in error.lower() or attempt == 2:
                self._relay.stop()
                raise RuntimeError("Dovecot did not start: " + error)
            self.imap_port, self.imaps_port = free_port(), free_port()
            self.pop3_port, self.submission_port = free_port(), free_port()
            self.lmtp_port = free_port()
        for port in (self.imap_port, self.pop3_port, self.submission_port, self.lmtp_port):
            _wait_for_port(port)

    def _config(self) -> str:
        r = self.root
        return f"""
instance_name = mg-{self.imap_port}
base_dir = {r}/run
state_dir = {r}/state
log_path = {self.log_path}
info_log_path = {self.log_path}
protocols = imap pop3 submission lmtp
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
first_valid_uid = 100
auth_mechanisms = plain login xoauth2 oauthbearer
auth_failure_delay = 0
auth_cache_size = 0
auth_verbose = yes
mail_location = maildir:{self.mail_root}/%u/Maildir
mail_home = {self.mail_root}/%u
hostname = mail.example.test
postmaster_address = postmaster@example.test
submission_relay_host = 127.0.0.1
submission_relay_port = {self.relay_port}
submission_relay_trusted = yes
namespace inbox {{
  inbox = yes
  separator = /
  mailbox Sent {{
    special_use = \\Sent
    auto = create
  }}
  mailbox Archive {{
    auto = create
  }}
}}
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {r}/oauth2.conf.ext
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {r}/passwd
}}
userdb {{
  driver = static
  args = uid=dovecot gid=dovecot home={self.mail_root}/%u allow_all_users=yes
}}
service imap-login {{
  inet_listener imap {{
    port = {self.imap_port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    port = {self.pop3_port}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
service submission-login {{
  inet_listener submission {{
    port = {self.submission_port}
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {self.lmtp_port}
  }}
}}
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
protocol lmtp {{
  auth_username_format = %Lu
}}
"""

    def deliver(self, user: str, *messages: bytes) -> None:
        """Put messages in `user`'s INBOX through Dovecot's own LMTP delivery."""
        with smtplib.LMTP("127.0.0.1", self.lmtp_port, timeout=30) as lmtp:
            for raw in messages:
                lmtp.sendmail("sender@example.test", [user], raw)

    def maildir(self, user: str, folder: str = "INBOX") -> list[bytes]:
        """The raw messages in `user`'s folder, read straight from the Maildir."""
        base = self.mail_root / user / "Maildir"
        if folder != "INBOX":
            base = base / f".{folder}"
        return [
            p.read_bytes()
            for sub in ("new", "cur")
            for p in sorted((base / sub).glob("*"))
            if (base / sub).is_dir()
        ]

    @property
    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def stop(self) -> None:
        self._relay.stop()
        subprocess.run(
            [DOVECOT, "-c", str(self.config), "stop"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(0.2)
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> DovecotServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
