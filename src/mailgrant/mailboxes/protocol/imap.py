"""IMAP with the standard library's imaplib: log in (password, XOAUTH2, OAUTHBEARER), select a
folder, list and fetch messages in batches without parsing them, act on them afterwards."""

from __future__ import annotations

import contextlib
import imaplib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

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

_UIDVALIDITY = re.compile(rb"UIDVALIDITY (\d+)")
_FETCH_ITEM = re.compile(rb"UID (\d+)")
_SIZE_ITEM = re.compile(rb"RFC822\.SIZE (\d+)")
_MESSAGE_ID = re.compile(rb"^Message-ID:\s*(<[^>\r\n]*>)", re.I | re.M)


@dataclass(frozen=True)
class FolderState:
    name: str
    uidvalidity: int
    exists: int


@dataclass(frozen=True)
class ServerMessage:
    uid: int
    size: int
    message_id: str = ""


class _Recording:
    """imaplib with every line sent and received copied to a transcript (literals are not)."""

    transcript: Transcript | None = None

    def send(self, data: Any) -> None:
        if self.transcript is not None and data.strip():
            self.transcript.client(data.decode("utf-8", "replace"))
        super().send(data)  # type: ignore[misc]

    def readline(self) -> bytes:
        line: bytes = super().readline()  # type: ignore[misc]
        if self.transcript is not None:
            self.transcript.server(line.decode("utf-8", "replace"))
        return line


class _IMAP4(_Recording, imaplib.IMAP4):
    pass


class _IMAP4_SSL(_Recording, imaplib.IMAP4_SSL):
    pass


def uid_set(uids: Sequence[int]) -> str:
    """1,2,3,5,7,8 -> "1:3,5,7:8": short commands for large mailboxes."""
    ordered = sorted(set(uids))
    parts: list[str] = []
    start = prev = None
    for uid in ordered:
        if start is None:
            start = prev = uid
        elif uid == prev + 1:  # type: ignore[operator]
            prev = uid
        else:
            parts.append(f"{start}:{prev}" if start != prev else str(start))
            start = prev = uid
    if start is not None:
        parts.append(f"{start}:{prev}" if start != prev else str(start))
    return ",".join(parts)


class ImapClient(MailClient):
    @property
    def capabilities(self) -> tuple[str, ...]:
        return tuple(str(c) for c in self.imap.capabilities)

    def _connect(self) -> None:
        e = self.endpoint
        try:
            if e.security == SSL:
                imap: imaplib.IMAP4 = _IMAP4_SSL(
                    e.host, e.port, ssl_context=e.ssl_context(), timeout=e.timeout
                )
            else:
                imap = _IMAP4(e.host, e.port, timeout=e.timeout)
                if e.security == STARTTLS:
                    imap.starttls(ssl_context=e.ssl_context())
                elif e.security != NONE:
                    raise MailError("protocol", f"Unknown security {e.security!r}.")
        except MailError:
            raise
        except imaplib.IMAP4.error as exc:
            raise MailError(
                "protocol", f"{e.host}:{e.port} does not speak IMAP as expected ({exc})."
            ) from None
        except (OSError, EOFError) as exc:
            raise connect_error(exc, e) from None
        imap.transcript = self.transcript  # type: ignore[attr-defined]
        if self.transcript is not None:
            self.transcript.server(imap.welcome.decode("utf-8", "replace"))
        self.imap = imap

    def _login(self, login: Login) -> None:
        if isinstance(login, PasswordLogin):
            if self.transcript is not None:
                self.transcript.hide(login.password)
            try:
                self.imap.login(login.username, login.password)
            except imaplib.IMAP4.error as exc:
                raise AuthRefused(
                    f"The server refused the password login: {_text(exc)}",
                    temporary="UNAVAILABLE" in str(exc),
                ) from None
            return
        mechanism = login.mechanism.upper()
        if f"AUTH={mechanism}" not in self.capabilities:
            raise MailError(
                "auth",
                f"The server does not offer {mechanism} "
                f"(it offers: {', '.join(self._mechanisms()) or 'none'}).",
            )
        token = login.get_token()
        message = sasl_message(login, self.endpoint, token)
        if self.transcript is not None:
            self.transcript.hide(token, sasl.encode(message))
        challenges: list[bytes] = []

        def respond(challenge: bytes) -> bytes:
            if challenges or challenge:
                challenges.append(challenge)
                return b""  # the error challenge is answered with an empty line
            challenges.append(b"")
            return message.encode()

        try:
            self.imap.authenticate(mechanism, respond)
        except imaplib.IMAP4.error as exc:
            details = next((sasl.decode_error(c) for c in challenges if c), None)
            raise AuthRefused(
                f"The server refused the {mechanism} token: {_text(exc)}",
                details=details,
                temporary="UNAVAILABLE" in str(exc),
            ) from None

    def _mechanisms(self) -> list[str]:
        return [c[5:] for c in self.capabilities if c.startswith("AUTH=")]

    def select(self, folder: str) -> FolderState:
        try:
            status, data = self.imap.select(_quote(folder))
        except imaplib.IMAP4.error as exc:
            raise MailError("folder", f"Cannot open folder {folder!r}: {_text(exc)}") from None
        if status != "OK":
            raise MailError("folder", f"The folder {folder!r} cannot be opened: {_text(data)}")
        found = None
        for line in self.imap.untagged_responses.get("OK", []):
            if isinstance(line, bytes) and (m := _UIDVALIDITY.search(line)):
                found = int(m.group(1))
        if found is None:
            _, values = self.imap.response("UIDVALIDITY")
            found = int(values[0]) if values and values[0] else 0
        return FolderState(name=folder, uidvalidity=found, exists=int(data[0] or 0))

    def messages(self) -> list[ServerMessage]:
        """Every message's UID and size in the selected folder (no bodies)."""
        status, data = self.imap.uid("FETCH", "1:*", "(UID RFC822.SIZE)")
        return [m for m in self._parse_sizes(status, data)]

    def message_ids(self, uids: Sequence[int]) -> dict[int, str]:
        """Message-ID of each UID (headers only), to recognise messages after a UIDVALIDITY
        change."""
        found: dict[int, str] = {}
        if not uids:
            return found
        status, data = self.imap.uid(
            "FETCH", uid_set(uids), "(UID BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])"
        )
        self._check(status, data, "read headers")
        for item in data:
            if isinstance(item, tuple) and (m := _FETCH_ITEM.search(item[0])):
                mid = _MESSAGE_ID.search(item[1])
                found[int(m.group(1))] = mid.group(1).decode("ascii", "replace") if mid else ""
        return found

    def fetch(self, uids: Sequence[int]) -> Iterator[tuple[int, bytes]]:
        """(uid, raw RFC 822 bytes) for `uids`, in one UID FETCH; not marked \\Seen."""
        if not uids:
            return
        status, data = self.imap.uid("FETCH", uid_set(uids), "(UID BODY.PEEK[])")
        self._check(status, data, "fetch")
        for item in data:
            if isinstance(item, tuple) and (m := _FETCH_ITEM.search(item[0])):
                yield int(m.group(1)), item[1]

    def mark_seen(self, uids: Sequence[int]) -> None:
        if uids:
            self._check(
                *self.imap.uid("STORE", uid_set(uids), "+FLAGS.SILENT", r"(\Seen)"), "mark as seen"
            )

    def move(self, uids: Sequence[int], folder: str) -> None:
        if not uids:
            return
        if "MOVE" in self.capabilities:
            self._check(*self.imap.uid("MOVE", uid_set(uids), _quote(folder)), "move")
            return
        self._check(*self.imap.uid("COPY", uid_set(uids), _quote(folder)), "copy")
        self.delete(uids)

    def delete(self, uids: Sequence[int]) -> None:
        if not uids:
            return
        self._check(
            *self.imap.uid("STORE", uid_set(uids), "+FLAGS.SILENT", r"(\Deleted)"), "delete"
        )
        if "UIDPLUS" in self.capabilities:
            self._check(*self.imap.uid("EXPUNGE", uid_set(uids)), "expunge")
        else:
            self._check(*self.imap.expunge(), "expunge")

    def close(self) -> None:
        try:
            self.imap.logout()
        except (imaplib.IMAP4.error, OSError, EOFError):
            self._abandon()

    def _abandon(self) -> None:
        with contextlib.suppress(OSError):
            self.imap.shutdown()

    def _parse_sizes(self, status: str, data: list[Any]) -> Iterator[ServerMessage]:
        self._check(status, data, "list messages")
        for item in data:
            line = item[0] if isinstance(item, tuple) else item
            if isinstance(line, bytes) and (uid := _FETCH_ITEM.search(line)):
                size = _SIZE_ITEM.search(line)
                yield ServerMessage(uid=int(uid.group(1)), size=int(size.group(1)) if size else 0)

    @staticmethod
    def _check(status: str, data: list[Any], what: str) -> None:
        if status != "OK":
            raise MailError("protocol", f"The server refused to {what}: {_text(data)}")


def _quote(folder: str) -> str:
    if re.fullmatch(r"[A-Za-z0-9._/-]+", folder):
        return folder
    if any(c in folder for c in "\r\n\0"):
        raise MailError("folder", "A folder name cannot contain line breaks.")
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _text(value: Any) -> str:
    if isinstance(value, list):
        value = b" ".join(v for v in value if isinstance(v, bytes))
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    text = str(value)
    # imaplib wraps the server's words: "AUTHENTICATE command error: NO [b'...']"
    inner = re.search(r"\[b['\"](.*)['\"]\]", text)
    return inner.group(1) if inner else text
