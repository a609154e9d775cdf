"""POP3 with the standard library's poplib: log in (password, XOAUTH2, OAUTHBEARER with the
SASL initial response, RFC 5034), list by UIDL, retrieve, delete. Deletions take effect only at
QUIT: a client that dies half-way deletes nothing."""

from __future__ import annotations

import contextlib
import poplib
from dataclasses import dataclass

from mailgrant.mailboxes.protocol import sasl
from mailgrant.mailboxes.protocol.transport import (
    NONE,
    SSL,
    STARTTLS,
    AuthRefused,
    Login,
    MailClient,
    MailError,
    PasswordLogin,
    Transcript,
    connect_error,
    sasl_message,
)


@dataclass(frozen=True)
class PopMessage:
    number: int
    uidl: str
    size: int


class _Recording:
    transcript: Transcript | None = None

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
                pop: poplib.POP3 = _POP3_SSL(
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
        pop.transcript = self.transcript  # type: ignore[attr-defined]
        if self.transcript is not None:
            self.transcript.server(pop.getwelcome().decode("utf-8", "replace"))
        self.pop = pop

    @property
    def capabilities(self) -> tuple[str, ...]:
        try:
            caps = self.pop.capa()
        except poplib.error_proto:
            return ()
        return tuple(f"{k} {' '.join(v)}".strip() for k, v in caps.items())

    def _login(self, login: Login) -> None:
        if isinstance(login, PasswordLogin):
            if self.transcript is not None:
                self.transcript.hide(login.password)
            try:
                self.pop.user(login.username)
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
            self.pop._putcmd(f"AUTH {mechanism} {payload}")  # type: ignore[attr-defined]
            line, _ = self.pop._getline()  # type: ignore[attr-defined]
            details = None
            if line.startswith(b"+ ") or line == b"+":
                details = sasl.decode_error(line[2:])
                self.pop._putcmd("")  # type: ignore[attr-defined]
                line, _ = self.pop._getline()  # type: ignore[attr-defined]
        except (OSError, EOFError) as exc:
            raise connect_error(exc, self.endpoint) from None
        if not line.startswith(b"+OK"):
            text = line.decode("utf-8", "replace")
            raise AuthRefused(
                f"The server refused the {mechanism} token: {text}",
                details=details,
                temporary="SYS/TEMP" in text,
            )

    def messages(self) -> list[PopMessage]:
        try:
            _, uidls, _ = self.pop.uidl()
            _, sizes, _ = self.pop.list()
        except poplib.error_proto as exc:
            raise MailError(
                "protocol", f"The server refused to list messages: {_text(exc)}"
            ) from None
        size_of = {int(n): int(s) for n, s in (line.split() for line in sizes)}
        found = []
        for line in uidls:
            number, uidl = line.split(maxsplit=1)
            found.append(
                PopMessage(
                    int(number), uidl.decode("ascii", "replace"), size_of.get(int(number), 0)
                )
            )
        return found

    def retrieve(self, number: int) -> bytes:
        try:
            _, lines, _ = self.pop.retr(number)
        except poplib.error_proto as exc:
            raise MailError(
                "protocol", f"The server refused message {number}: {_text(exc)}"
            ) from None
        return b"\r\n".join(lines) + b"\r\n"

    def delete(self, number: int) -> None:
        try:
            self.pop.dele(number)
        except poplib.error_proto as exc:
            raise MailError(
                "protocol", f"The server refused to delete {number}: {_text(exc)}"
            ) from None

    def close(self) -> None:
        """QUIT: only now do deletions take effect."""
        try:
            self.pop.quit()
        except (poplib.error_proto, OSError, EOFError) as exc:
            self._abandon()
            raise MailError("protocol", f"The server did not confirm QUIT: {exc}") from None

    def _abandon(self) -> None:
        with contextlib.suppress(OSError):
            self.pop.close()


def _text(exc: object) -> str:
    value = exc.args[0] if isinstance(exc, Exception) and exc.args else exc
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
