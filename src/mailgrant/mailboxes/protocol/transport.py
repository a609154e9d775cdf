"""What the IMAP, POP3 and SMTP clients share: connection settings, how to log in, the masked
transcript and the errors. Plain values and dataclasses; no Django."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass, field
from typing import Any, Self

from mailgrant.mailboxes.protocol import sasl

SSL, STARTTLS, NONE = "ssl", "starttls", "none"
DEFAULT_TIMEOUT = 30.0
MAX_TRANSCRIPT_LINES = 400
# How much larger than the server's own size (RFC822.SIZE, POP3 LIST) a message may really be:
# those sizes are not always exact (line ends counted differently, sizes taken from the store).
SIZE_SLACK = 64 * 1024
# What is read off the socket at once: a literal or a message grows only as fast as it arrives.
READ_CHUNK = 64 * 1024


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


def size_allowance(claimed: int, maximum: int) -> int:
    """The bytes a message the server says is `claimed` bytes long may have (an unknown size,
    0, allows `maximum`); whatever goes past it is refused while it is being read."""
    base = min(claimed, maximum) if claimed > 0 else maximum
    return base + max(SIZE_SLACK, base // 4)


class MailError(Exception):
    """A mail server exchange failed. `kind` is stable (connect, tls, auth, folder, protocol,
    too_large); `message` is a sentence for the administrator; `cause` says more where
    the kind alone does not (connect: refused, timeout, dns), for the health's reason."""

    def __init__(
        self, kind: str, message: str, *, transient: bool = False, cause: str = ""
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.transient = transient
        self.cause = cause


class AuthRefused(MailError):
    """The server refused the credentials; `details` is its decoded XOAUTH2 / OAUTHBEARER
    error challenge (e.g. ``{"status": "401", "schemes": "bearer"}``) when it sent one."""

    def __init__(
        self, message: str, *, details: dict[str, Any] | None = None, temporary: bool = False
    ) -> None:
        super().__init__("auth", message, transient=temporary)
        self.details = details


class TooLarge(MailError):
    """The server sent more than it said it would (or than mailgrant takes): the read stopped
    there, and the connection is out of step and must be dropped. `message_key` is the UID or
    UIDL of the message at fault, empty when the reply did not say which."""

    def __init__(self, message: str, *, message_key: str = "") -> None:
        super().__init__("too_large", message)
        self.message_key = message_key


@dataclass
class Transcript:
    """The protocol exchange as an administrator may read it: credentials never appear. The
    lines a login sends are masked where they are sent (`credentials`), whatever their encoding
    (quoted, base64, SASL); `hide` also masks values a server might echo back."""

    lines: list[str] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)
    # Inside `credentials`: how the login's first line is shown, until it has been sent.
    _logging_in: bool = field(default=False, repr=False)
    _first_line: Callable[[str], str] | None = field(default=None, repr=False)
    _first_sent: bool = field(default=False, repr=False)

    def hide(self, *values: str) -> None:
        self.secrets.extend(v for v in values if v)

    @contextmanager
    def credentials(self, first: Callable[[str], str] | None = None) -> Iterator[None]:
        """While a login sends credentials: the first line the client sends is recorded as
        `first(line)` (the command with its credential as ***; None: that line carries none),
        every later non-empty line (SASL continuations) as ***."""
        self._logging_in, self._first_line, self._first_sent = True, first, False
        try:
            yield
        finally:
            self._logging_in, self._first_line = False, None

    def client(self, text: str) -> None:
        if self._logging_in:
            if not self._first_sent:
                self._first_sent = True
                text = self._first_line(text) if self._first_line else text
            elif text.strip():
                text = "***"
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
        if isinstance(login, PasswordLogin) and any(
            c in "\r\n\0" for c in login.username + login.password
        ):
            # A line break would end the command early (the rest a command of its own).
            raise MailError(
                "auth", "The user name or password contains a line break or NUL character."
            )
        self._connect()
        try:
            self._login(login)
        except BaseException:
            self._abandon()
            raise

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.close()
            return
        with suppress(MailError):  # the error on the way out is the one to report
            self.close()

    def _connect(self) -> None:
        raise NotImplementedError

    def _login(self, login: Login) -> None:
        raise NotImplementedError

    def _abandon(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def _credentials(self, first: Callable[[str], str] | None = None) -> Any:
        if self.transcript is None:
            return nullcontext()
        return self.transcript.credentials(first)

    @contextmanager
    def _exchange(
        self,
        what: str,
        *,
        refused: tuple[type[Exception], ...],
        lost: tuple[type[Exception], ...] = (),
        reason: Callable[[BaseException], str] = str,
    ) -> Iterator[None]:
        """One exchange with the server, whatever fails in it as a MailError: the server
        saying no (`refused`) keeps the connection; a connection lost (`lost`, OSError), an
        answer too large or one that cannot be read drops it (it is out of step)."""
        where = f"{self.endpoint.host}:{self.endpoint.port}"
        try:
            yield
        except TooLarge:
            self._abandon()
            raise
        except MailError:
            raise
        except lost as exc:
            self._abandon()
            raise MailError(
                "protocol",
                f"{where} broke off the connection while asked to {what}: {reason(exc)}",
                transient=True,
            ) from None
        except refused as exc:
            raise MailError("protocol", f"The server refused to {what}: {reason(exc)}") from None
        except (OSError, EOFError) as exc:
            self._abandon()
            raise connect_error(exc, self.endpoint) from None
        except MemoryError:
            self._abandon()
            raise TooLarge(f"{where} answered too much to hold when asked to {what}.") from None


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
        return MailError(
            "connect", f"{where} did not answer in time.", transient=True, cause="timeout"
        )
    if isinstance(exc, ConnectionRefusedError):
        return MailError(
            "connect",
            f"{where} refused the connection (nothing listens there?).",
            transient=True,
            cause="refused",
        )
    if isinstance(exc, socket.gaierror):
        return MailError(
            "connect",
            f"The host name {endpoint.host!r} cannot be resolved.",
            transient=True,
            cause="dns",
        )
    if isinstance(exc, OSError):
        return MailError(
            "connect", f"Cannot talk to {where}: {exc.strerror or exc}.", transient=True
        )
    return MailError("protocol", f"{where}: {exc}")


def sasl_message(login: TokenLogin, endpoint: Endpoint, token: str) -> str:
    try:
        return sasl.initial_response(
            login.mechanism,
            user=login.username,
            token=token,
            host=endpoint.host,
            port=endpoint.port,
        )
    except ValueError as exc:  # a token or user name no SASL message can carry
        raise MailError("auth", f"Cannot log in with {login.mechanism}: {exc}.") from None
