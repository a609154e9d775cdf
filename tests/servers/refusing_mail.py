"""IMAP and SMTP servers on real loopback sockets that refuse the way Exchange Online and Gmail
do, with their exact words, for what no local peer can say. Each answers one scripted reply
to the command it is given (the rest agreed to), and records what it received. No Django.

The replies, and where they are documented:
- Exchange Online, IMAP, after an accepted login, to SELECT: "BAD User is authenticated but
  not connected." (Microsoft Learn, "Authenticate an IMAP, POP or SMTP connection using
  OAuth", and the Microsoft Q&A threads quoting it).
- Exchange Online, SMTP AUTH off: "535 5.7.139 Authentication unsuccessful,
  SmtpClientAuthentication is disabled for the Tenant. Visit https://aka.ms/smtp_auth_disabled
  for more information." and the same "... for the Mailbox." (Microsoft Learn, "Enable or
  disable SMTP AUTH in Exchange Online").
- Gmail with IMAP off, to LOGIN / AUTHENTICATE: "NO [ALERT] Your account is not enabled for
  IMAP use. Please visit your Gmail settings page and enable your account for IMAP access.
  (Failure)" (Gmail Help, "Add Gmail to another email client")."""

from __future__ import annotations

import contextlib
import socketserver
import threading
from dataclasses import dataclass, field
from typing import Any

EXCHANGE_NOT_CONNECTED = "BAD User is authenticated but not connected."
EXCHANGE_SMTP_TENANT = (
    "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the "
    "Tenant. Visit https://aka.ms/smtp_auth_disabled for more information."
)
EXCHANGE_SMTP_MAILBOX = (
    "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the "
    "Mailbox. Visit https://aka.ms/smtp_auth_disabled for more information."
)
GMAIL_IMAP_OFF = (
    "NO [ALERT] Your account is not enabled for IMAP use. Please visit your Gmail settings "
    "page and enable your account for IMAP access. (Failure)"
)


@dataclass
class _Scripted:
    replies: dict[str, str] = field(default_factory=dict)  # VERB -> the reply (tag added)
    commands: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        owner = self

        class Handler(socketserver.StreamRequestHandler):
            timeout = 30

            def handle(self) -> None:
                with contextlib.suppress(OSError):
                    owner._session(self.rfile, self.wfile)

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()

    def _session(self, rfile: Any, wfile: Any) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class RefusingImap(_Scripted):
    caps: str = "IMAP4rev1 AUTH=PLAIN AUTH=XOAUTH2 IDLE"

    def _session(self, rfile: Any, wfile: Any) -> None:
        def say(*lines: str) -> None:
            wfile.write("".join(f"{line}\r\n" for line in lines).encode())
            wfile.flush()

        caps = self.caps
        say(f"* OK [CAPABILITY {caps}] The Microsoft Exchange IMAP4 service is ready.")
        while line := rfile.readline():
            text = line.decode("utf-8", "replace").rstrip("\r\n")
            tag, _, rest = text.partition(" ")
            verb = rest.split(" ", 1)[0].upper()
            self.commands.append(verb)
            if verb in self.replies:
                say(f"{tag} {self.replies[verb]}")
            elif verb == "CAPABILITY":
                say(f"* CAPABILITY {caps}", f"{tag} OK CAPABILITY completed.")
            elif verb == "AUTHENTICATE":
                say("+ ")
                rfile.readline()  # the client's response
                say(f"{tag} OK AUTHENTICATE completed.")
            elif verb == "LOGOUT":
                say("* BYE", f"{tag} OK LOGOUT completed.")
                return
            else:
                say(f"{tag} OK {verb} completed.")


@dataclass
class RefusingSmtp(_Scripted):
    def _session(self, rfile: Any, wfile: Any) -> None:
        def say(line: str) -> None:
            wfile.write(f"{line}\r\n".encode())
            wfile.flush()

        say("220 refusing.example.test Microsoft ESMTP MAIL Service ready")
        while line := rfile.readline():
            text = line.decode("utf-8", "replace").rstrip("\r\n")
            verb = text.split(" ", 1)[0].upper()
            self.commands.append(verb)
            if verb in ("EHLO", "HELO"):
                wfile.write(b"250-refusing.example.test Hello\r\n250 AUTH LOGIN PLAIN XOAUTH2\r\n")
                wfile.flush()
            elif verb == "AUTH":
                say(self.replies.get("AUTH", "235 2.7.0 Authentication successful"))
            elif verb == "QUIT":
                say("221 2.0.0 Service closing transmission channel")
                return
            else:
                say("250 2.0.0 OK")
