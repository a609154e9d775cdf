"""POP3 with the standard library's poplib: log in (password, XOAUTH2, OAUTHBEARER with the
SASL initial response, RFC 5034), list by UIDL, retrieve, delete. Deletions take effect only at
QUIT: a client that dies half-way deletes nothing."""

from __future__ import annotations

import contextlib
import poplib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mailgrant.mailboxes.protocol import sasl
from mailgrant.mailboxes.protocol.transport import (
    NONE,
    READ_CHUNK,
    SSL,
    STARTTLS,
    AuthRefused,
    Login,
    MailClient,
    MailError,
    PasswordLogin,
    TooLarge,
    Transcript,
    connect_error,
    sasl_message,
    size_allowance,
)

# RFC 1939: "nn mm" (LIST) and "nn unique-id" (UIDL: printable, 70 characters by the RFC, up
# to the 100 the index holds from servers that go past it).
_LIST_LINE = re.compile(rb"(\d{1,18}) (\d{1,18})")
_UIDL_LINE = re.compile(rb"(\d{1,18}) ([\x21-\x7e]{1,100})")


@dataclass(frozen=True)
class PopMessage:
    number: int
    uidl: str
    size: int


class _Recording:
    transcript: Transcript | None = None
    file: Any  # poplib's, and its commands
    _putcmd: Callable[[str], None]
    _getresp: Callable[[], bytes]

    def _putline(self, line: bytes) -> None:
        if self.transcript is not None:
            self.transcript.client(line.decode("utf-8", "replace"))
        super()._putline(line)  # type: ignore[misc]

    def _getline(self) -> tuple[bytes, int]:
        line, octets = super()._getline()  # type: ignore[misc]
        if self.transcript is not None:
            self.transcript.server(line.decode("utf-8", "replace"))
        return line, octets


class _POP3(_Recording, poplib.POP3):
    pass


class _POP3_SSL(_Recording, poplib.POP3_SSL):
    pass


class Pop3Client(MailClient):
    def _connect(self) -> None:
        e = self.endpoint
        try:
            if e.security == SSL:
                pop: _POP3 | _POP3_SSL = _POP3_SSL(
                    e.host, e.port, timeout=e.timeout, context=e.ssl_context()
                )
            else:
                pop = _POP3(e.host, e.port, timeout=e.timeout)
                if e.security == STARTTLS:
                    pop.stls(context=e.ssl_context())
                elif e.security != NONE:
                    raise MailError("protocol", f"Unknown security {e.security!r}.")
        except MailError:
            raise
        except poplib.error_proto as exc:
            raise MailError(
                "protocol", f"{e.host}:{e.port} does not speak POP3 as expected ({_text(exc)})."
            ) from None
        except (OSError, EOFError) as exc:
            raise connect_error(exc, e) from None
        pop.transcript = self.transcript
        self._gone = False
        if self.transcript is not None:
            self.transcript.server(pop.getwelcome().decode("utf-8", "replace"))
        self.pop = pop

    @property
    def capabilities(self) -> tuple[str, ...]:
        with self._server("list its capabilities"):
            try:
                caps = self.pop.capa()
            except poplib.error_proto:
                return ()
        return tuple(f"{k} {' '.join(v)}".strip() for k, v in caps.items())

    def _server(self, what: str) -> Any:
        return self._exchange(what, refused=(poplib.error_proto,), reason=_text)

    def _login(self, login: Login) -> None:
        with self._exchange("log in", refused=()):
            self._login_once(login)

    def _login_once(self, login: Login) -> None:
        if isinstance(login, PasswordLogin):
            if self.transcript is not None:
                self.transcript.hide(login.password)
            try:
                self.pop.user(login.username)
                with self._credentials(lambda _: "PASS ***"):
                    self.pop.pass_(login.password)
            except poplib.error_proto as exc:
                raise AuthRefused(
                    f"The server refused the password login: {_text(exc)}",
                    temporary="SYS/TEMP" in _text(exc),
                ) from None
            return
        mechanism = login.mechanism.upper()
        token = login.get_token()
        payload = sasl.encode(sasl_message(login, self.endpoint, token))
        if self.transcript is not None:
            self.transcript.hide(token, payload)
        try:
            with self._credentials(lambda _: f"AUTH {mechanism} ***"):
                self.pop._putcmd(f"AUTH {mechanism} {payload}")
                line, _ = self.pop._getline()
                details = None
                if line.startswith(b"+ ") or line == b"+":
                    details = sasl.decode_error(line[2:])
                    self.pop._putcmd("")
                    line, _ = self.pop._getline()
        except (OSError, EOFError) as exc:
            raise connect_error(exc, self.endpoint) from None
        except poplib.error_proto as exc:  # a line too long, the connection closed
            raise MailError("auth", f"The {mechanism} login failed: {_text(exc)}") from None
        if not line.startswith(b"+OK"):
            text = line.decode("utf-8", "replace")
            raise AuthRefused(
                f"The server refused the {mechanism} token: {text}",
                details=details,
                temporary="SYS/TEMP" in text,
            )

    def messages(self) -> list[PopMessage]:
        with self._server("list messages"):
            _, uidls, _ = self.pop.uidl()
            _, sizes, _ = self.pop.list()
        size_of = {int(n): int(size) for n, size in _parsed(sizes, _LIST_LINE, "LIST")}
        return [
            PopMessage(int(n), uidl.decode("ascii"), size_of.get(int(n), 0))
            for n, uidl in _parsed(uidls, _UIDL_LINE, "UIDL")
        ]

    def retrieve(self, message: PopMessage, *, max_bytes: int) -> bytes:
        """The message, read a chunk at a time (poplib gathers all of it, however long) up to
        its size_allowance (its LIST size, `max_bytes` at most): past that it is TooLarge and
        the connection is dropped without QUIT, so nothing is deleted."""
        allowed = size_allowance(message.size, max_bytes)
        with self._server(f"send message {message.number}"):
            self.pop._putcmd(f"RETR {message.number}")
            self.pop._getresp()
            data = bytearray()
            at_line_start = True
            while True:
                line = self.pop.file.readline(READ_CHUNK)
                if not line:
                    raise EOFError("the server closed the connection inside a message")
                if at_line_start and line in (b".\r\n", b".\n"):
                    return bytes(data)
                if at_line_start and line.startswith(b"."):  # dot-stuffed
                    line = line[1:]
                at_line_start = line.endswith(b"\n")
                if at_line_start and not line.endswith(b"\r\n"):
                    line = line[:-1] + b"\r\n"
                data += line
                if len(data) > allowed:
                    raise TooLarge(
                        f"Message {message.uidl} is larger than the {message.size} bytes the "
                        f"server listed (over {allowed} read): nothing of it was kept, and it "
                        "stays on the server.",
                        message_key=message.uidl,
                    )

    def delete(self, number: int) -> None:
        with self._server(f"delete message {number}"):
            self.pop.dele(number)

    def close(self) -> None:
        """QUIT: only now do deletions take effect."""
        if self._gone:
            return
        try:
            self.pop.quit()
        except (poplib.error_proto, OSError, EOFError) as exc:
            self._abandon()
            raise MailError("protocol", f"The server did not confirm QUIT: {exc}") from None

    def _abandon(self) -> None:
        self._gone = True
        with contextlib.suppress(OSError):
            self.pop.close()


def _parsed(lines: list[bytes], form: re.Pattern[bytes], what: str) -> list[tuple[bytes, ...]]:
    found = []
    for line in lines:
        match = form.fullmatch(line.strip())
        if match is None:
            text = line[:80].decode("utf-8", "replace")
            raise MailError("protocol", f"The server sent a malformed {what} line: {text!r}.")
        found.append(match.groups())
    return found


def _text(exc: object) -> str:
    value = exc.args[0] if isinstance(exc, Exception) and exc.args else exc
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
