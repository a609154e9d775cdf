"""A private Dovecot for IDLE and health tests and bench/idle.py: many password users, many
connections per user and process (an IDLE connection is a long-lived imap process), and a
stop and start that keep its ports, Maildirs and users (a server restart as clients see it).
No Django here."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import time

from tests.servers.dovecot import DOVECOT, DovecotServer, _wait_for_port
from tests.servers.fakes import self_signed_certificate


class IdleDovecot(DovecotServer):
    """`tls`: also serve implicit TLS (imaps_port) and STARTTLS, with a self-signed
    certificate for 127.0.0.1 at `certificate` (a client trusts it through SSL_CERT_FILE)."""

    def __init__(self, *, introspection_url: str, tls: bool = False) -> None:
        self.certificate = ""
        self._key = ""
        if tls:
            self.certificate, self._key = self_signed_certificate()
        super().__init__(introspection_url=introspection_url)

    def _config(self) -> str:
        config = super()._config()
        if self.certificate:
            config = config.replace(
                "\nssl = no\n",
                f"\nssl = yes\nssl_cert = <{self.certificate}\nssl_key = <{self._key}\n",
            ).replace(
                "inet_listener imaps {\n    port = 0",
                f"inet_listener imaps {{\n    port = {self.imaps_port}",
            )
        return (
            config
            + """
default_process_limit = 2000
default_client_limit = 4000
mail_max_userip_connections = 2000
# An IDLE session past the machine's inotify instances (128 a user by default) checks its
# Maildir on this interval instead of being told at once.
mailbox_idle_check_interval = 1 secs
"""
        )

    def add_password_users(self, users: dict[str, str]) -> None:
        """Password users beyond the built-in ones (Dovecot reads its passwd-file again when it
        changes)."""
        passwd = self.root / "passwd"
        with passwd.open("a", encoding="utf-8") as out:
            for user, password in users.items():
                out.write(f"{user}:{{PLAIN}}{password}::::::\n")

    def halt(self) -> None:
        """Stop the daemon (every connection drops), keeping everything else."""
        subprocess.run(
            [DOVECOT, "-c", str(self.config), "stop"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.imap_port), timeout=0.5):
                    time.sleep(0.05)
            except OSError:
                break
        else:
            raise RuntimeError("Dovecot did not stop")
        # The master's stop leaves the sessions' imap processes serving their clients: end
        # them, as a machine's restart would.
        for pid in self._session_pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def _session_pids(self) -> set[int]:
        listed = subprocess.run(
            ["ss", "-tnpH", "state", "established", f"( sport = :{self.imap_port} )"],
            capture_output=True,
            text=True,
        ).stdout
        return {int(pid) for pid in re.findall(r"pid=(\d+)", listed)}

    def resume(self) -> None:
        started = subprocess.run(
            [DOVECOT, "-c", str(self.config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if started.returncode != 0:
            raise RuntimeError("Dovecot did not start again")
        for port in (self.imap_port, self.lmtp_port):
            _wait_for_port(port, timeout=30)
