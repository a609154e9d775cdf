"""What the IMAP, POP3 and SMTP clients share: connection settings, how to log in, the masked
transcript and the errors. Plain values and dataclasses; no Django."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Self

from mailgrant.mailboxes.protocol import sasl

SSL, STARTTLS, NONE = "ssl", "starttls", "none"
DEFAULT_TIMEOUT = 30.0
MAX_TRANSCRIPT_LINES = 400


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    security: str = SSL
    timeout: float = DEFAULT_TIMEOUT
    verify: bool = True

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        if not self.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


@dataclass(frozen=True)
class PasswordLogin:
    username: str
    password: str

    def __repr__(self) -> str:
        return f"PasswordLogin(username={self.username!r}, password=***)"


@dataclass(frozen=True)
class TokenLogin:
    """SASL XOAUTH2 or OAUTHBEARER with a token from `get_token` (asked at login time)."""

    username: str
    mechanism: str  # sasl.XOAUTH2 or sasl.OAUTHBEARER
    get_token: Callable[[], str]


Login = PasswordLogin | TokenLogin


class MailError(Exception):
    """A mail server exchange failed. `kind` is stable (connect, tls, auth, folder, protocol,
    too_large); `message` is a sentence for the administrator."""

    def __init__(self, kind: str, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.transient = transient


class AuthRefused(MailError):
    """The server refused the credentials; `details` is its decoded XOAUTH2 / OAUTHBEARER
    error challenge (e.g. ``{"status": "401", "schemes": "bearer"}``) when it sent one."""

    def __init__(
        self, message: str, *, details: dict[str, Any] | None = None, temporary: bool = False
    ) -> None:
        super().__init__("auth", message, transient=temporary)
        self.details = details


@dataclass
class Transcript:
    """The protocol exchange as an administrator may read it: credentials never appear."""

    lines: list[str] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)

    def hide(self, *values: str) -> None:
        self.secrets.extend(v for v in values if v)

    def client(self, text: str) -> None:
        self._add("C: ", text)

    def server(self, text: str) -> None:
        self._add("S: ", text)

    def note(self, text: str) -> None:
        self._add("   ", text)

    def _add(self, prefix: str, text: str) -> None:
        if len(self.lines) >= MAX_TRANSCRIPT_LINES:
            return
        for secret in self.secrets:
            text = text.replace(secret, "***")
        self.lines.append(prefix + text.rstrip("\r\n"))

    def __str__(self) -> str:
        return "\n".join(self.lines)


class MailClient:
    """Connect on creation, log in, and always leave the connection tidy: a failed login
    drops the socket; `with` logs out."""

    def __init__(
        self, endpoint: Endpoint, login: Login, *, transcript: Transcript | None = None
    ) -> None:
        self.endpoint = endpoint
        self.transcript = transcript
        self._connect()
        try:
            self._login(login)
        except BaseException:
            self._abandon()
            raise

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _connect(self) -> None:
        raise NotImplementedError

    def _login(self, login: Login) -> None:
        raise NotImplementedError

    def _abandon(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


def connect_error(exc: BaseException, endpoint: Endpoint) -> MailError:
    where = f"{endpoint.host}:{endpoint.port}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return MailError(
            "tls", f"The TLS certificate of {where} is not trusted ({exc.verify_message})."
        )
    if isinstance(exc, ssl.SSLError):
        hint = (
            " Is this a plaintext port? Try security 'starttls' or 'none'."
            if ("WRONG_VERSION_NUMBER" in str(exc) or "record layer" in str(exc))
            else ""
        )
        return MailError("tls", f"TLS with {where} failed ({exc.reason or exc}).{hint}")
    if isinstance(exc, TimeoutError | socket.timeout):
        return MailError("connect", f"{where} did not answer in time.", transient=True)
    if isinstance(exc, ConnectionRefusedError):
        return MailError(
            "connect", f"{where} refused the connection (nothing listens there?).", transient=True
        )
    if isinstance(exc, socket.gaierror):
        return MailError(
            "connect", f"The host name {endpoint.host!r} cannot be resolved.", transient=True
        )
    if isinstance(exc, OSError):
        return MailError(
            "connect", f"Cannot talk to {where}: {exc.strerror or exc}.", transient=True
        )
    return MailError("protocol", f"{where}: {exc}")


def sasl_message(login: TokenLogin, endpoint: Endpoint, token: str) -> str:
    return sasl.initial_response(
        login.mechanism, user=login.username, token=token, host=endpoint.host, port=endpoint.port
    )
