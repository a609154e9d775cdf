"""IMAP with the standard library's imaplib: log in (password, XOAUTH2, OAUTHBEARER), select a
folder, list and fetch messages in batches without parsing them, act on them afterwards."""

from __future__ import annotations

import base64
import contextlib
import imaplib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
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
    TokenLogin,
    TooLarge,
    Transcript,
    connect_error,
    sasl_message,
    size_allowance,
)

_UIDVALIDITY = re.compile(rb"UIDVALIDITY (\d+)")
_FETCH_ITEM = re.compile(rb"UID (\d+)")
_SIZE_ITEM = re.compile(rb"RFC822\.SIZE (\d+)")
_MESSAGE_ID = re.compile(rb"^Message-ID:\s*(<[^>\r\n]*>)", re.I | re.M)
# What LOGIN carries as a quoted string (imaplib sends ASCII only); anything else goes by
# AUTHENTICATE PLAIN, which is UTF-8.
_LOGIN_USER = re.compile(r"[\w.@+=!#$&'^`|~/-]+", re.ASCII)
_LOGIN_PASSWORD = re.compile(r"[\x20-\x7e]+")
# A literal outside a message fetch (a header field, a folder name) is never this large.
SMALL_LITERAL = 1024 * 1024


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


@dataclass
class _Literals:
    """What the literals of one command may hold: each at most the allowance of the message
    its line names (the largest when it names none), all of them together at most the sum."""

    each: dict[int, int] = field(default_factory=dict)
    default: int = SMALL_LITERAL
    left: int | None = None

    def take(self, line: bytes, size: int) -> None:
        found = _FETCH_ITEM.search(line)
        uid = int(found.group(1)) if found else None
        if self.each:
            allowed = self.each.get(uid, 0) if uid is not None else max(self.each.values())
        else:
            allowed = self.default
        if size > allowed or (self.left is not None and size > self.left):
            raise TooLarge(
                f"The server announced {size} bytes for "
                f"{f'UID {uid}' if uid is not None else 'a reply'}, more than the "
                f"{min(allowed, self.left if self.left is not None else allowed)} it may "
                "have: nothing of it was kept, and it stays on the server.",
                message_key=str(uid) if uid in self.each else "",
            )
        if self.left is not None:
            self.left -= size


class _Recording:
    """imaplib with every line sent and received copied to a transcript (literals are not), and
    literals read a chunk at a time against what the command expects (imaplib reads a literal
    with one read of the size the server announces, allocated before a byte arrives)."""

    transcript: Transcript | None = None
    literals = _Literals()  # outside a command that says otherwise; never used up
    _announcing = b""  # the line that announced the literal
    file: Any  # imaplib's

    def send(self, data: Any) -> None:
        if self.transcript is not None and data.strip():
            self.transcript.client(data.decode("utf-8", "replace"))
        super().send(data)  # type: ignore[misc]

    def readline(self) -> bytes:
        line: bytes = super().readline()  # type: ignore[misc]
        self._announcing = line
        if self.transcript is not None:
            self.transcript.server(line.decode("utf-8", "replace"))
        return line

    def read(self, size: int) -> bytes:
        self.literals.take(self._announcing, size)
        data = bytearray()
        while len(data) < size:
            chunk = self.file.read(min(READ_CHUNK, size - len(data)))
            if not chunk:
                raise imaplib.IMAP4.abort("EOF inside a literal")
            data += chunk
        return bytes(data)


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
                imap: _IMAP4 | _IMAP4_SSL = _IMAP4_SSL(
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
        imap.transcript = self.transcript
        self._gone = False
        if self.transcript is not None:
            self.transcript.server(imap.welcome.decode("utf-8", "replace"))
        self.imap = imap

    def _login(self, login: Login) -> None:
        with self._exchange("log in", refused=(), lost=(imaplib.IMAP4.abort,), reason=_text):
            if isinstance(login, PasswordLogin):
                self._password_login(login)
            else:
                self._token_login(login)

    def _password_login(self, login: PasswordLogin) -> None:
        user, password = login.username, login.password
        if self.transcript is not None:
            self.transcript.hide(password)
        try:
            if _LOGIN_USER.fullmatch(user) and _LOGIN_PASSWORD.fullmatch(password):
                with self._credentials(lambda line: f"{line.split(' ', 1)[0]} LOGIN {user} ***"):
                    self.imap.login(user, password)
            elif "AUTH=PLAIN" in self.capabilities:
                with self._credentials():
                    self.imap.authenticate("PLAIN", lambda _: f"\0{user}\0{password}".encode())
            else:
                raise MailError(
                    "auth",
                    "The user name or password has characters IMAP LOGIN cannot carry "
                    "(beyond ASCII), and the server does not offer AUTHENTICATE PLAIN.",
                )
        except imaplib.IMAP4.abort:
            raise
        except imaplib.IMAP4.error as exc:
            raise AuthRefused(
                f"The server refused the password login: {_text(exc)}",
                temporary="UNAVAILABLE" in str(exc),
            ) from None

    def _token_login(self, login: TokenLogin) -> None:
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
            with self._credentials():
                self.imap.authenticate(mechanism, respond)
        except imaplib.IMAP4.abort:
            raise
        except imaplib.IMAP4.error as exc:
            details = next((sasl.decode_error(c) for c in challenges if c), None)
            raise AuthRefused(
                f"The server refused the {mechanism} token: {_text(exc)}",
                details=details,
                temporary="UNAVAILABLE" in str(exc),
            ) from None

    def _mechanisms(self) -> list[str]:
        return [c[5:] for c in self.capabilities if c.startswith("AUTH=")]

    def _server(self, what: str) -> Any:
        return self._exchange(
            what, refused=(imaplib.IMAP4.error,), lost=(imaplib.IMAP4.abort,), reason=_text
        )

    @contextlib.contextmanager
    def _expecting(self, literals: _Literals) -> Iterator[None]:
        self.imap.literals = literals
        try:
            yield
        finally:
            del self.imap.literals

    def select(self, folder: str) -> FolderState:
        with self._server(f"open folder {folder!r}"):
            try:
                status, data = self.imap.select(_quote(folder))
            except imaplib.IMAP4.abort:
                raise
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
                found = _number(values[0] if values else b"0", "UIDVALIDITY")
            return FolderState(
                name=folder, uidvalidity=found, exists=_number(data[0] or b"0", "EXISTS")
            )

    def messages(self) -> list[ServerMessage]:
        """Every message's UID and size in the selected folder (no bodies)."""
        with self._server("list messages"):
            status, data = self.imap.uid("FETCH", "1:*", "(UID RFC822.SIZE)")
            return list(self._parse_sizes(status, data))

    def message_ids(self, uids: Sequence[int]) -> dict[int, str]:
        """Message-ID of each UID (headers only), to recognise messages after a UIDVALIDITY
        change."""
        found: dict[int, str] = {}
        if not uids:
            return found
        with self._server("read headers"), self._expecting(_Literals(default=SMALL_LITERAL)):
            status, data = self.imap.uid(
                "FETCH", uid_set(uids), "(UID BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])"
            )
            self._check(status, data, "read headers")
        for item in data:
            if isinstance(item, tuple) and (m := _FETCH_ITEM.search(item[0])):
                mid = _MESSAGE_ID.search(item[1])
                found[int(m.group(1))] = mid.group(1).decode("ascii", "replace") if mid else ""
        return found

    def fetch(
        self, messages: Sequence[ServerMessage], *, max_bytes: int
    ) -> Iterator[tuple[int, bytes]]:
        """(uid, raw RFC 822 bytes) of `messages`, in one UID FETCH; not marked \\Seen. Each
        may be at most its size_allowance (the server's size, `max_bytes` at most): a larger
        one fails the fetch with TooLarge before it is read, and the connection is dropped."""
        if not messages:
            return
        allowed = {m.uid: size_allowance(m.size, max_bytes) for m in messages}
        literals = _Literals(each=allowed, left=sum(allowed.values()))
        with self._server("fetch messages"), self._expecting(literals):
            status, data = self.imap.uid("FETCH", uid_set(list(allowed)), "(UID BODY.PEEK[])")
            self._check(status, data, "fetch")
        for item in data:
            if isinstance(item, tuple) and (m := _FETCH_ITEM.search(item[0])):
                uid = int(m.group(1))
                if len(item[1]) > allowed.get(uid, 0):  # its UID came after the literal
                    raise TooLarge(
                        f"The server sent {len(item[1])} bytes for UID {uid}, more than the "
                        f"{allowed.get(uid, 0)} it may have: it stays on the server.",
                        message_key=str(uid),
                    )
                yield uid, item[1]

    def mark_seen(self, uids: Sequence[int]) -> None:
        if uids:
            with self._server("mark as seen"):
                self._check(
                    *self.imap.uid("STORE", uid_set(uids), "+FLAGS.SILENT", r"(\Seen)"),
                    "mark as seen",
                )

    def move(self, uids: Sequence[int], folder: str) -> None:
        if not uids:
            return
        with self._server(f"move messages to {folder!r}"):
            if "MOVE" in self.capabilities:
                self._check(*self.imap.uid("MOVE", uid_set(uids), _quote(folder)), "move")
                return
            self._check(*self.imap.uid("COPY", uid_set(uids), _quote(folder)), "copy")
        self.delete(uids)

    def delete(self, uids: Sequence[int]) -> None:
        if not uids:
            return
        with self._server("delete messages"):
            self._check(
                *self.imap.uid("STORE", uid_set(uids), "+FLAGS.SILENT", r"(\Deleted)"),
                "delete",
            )
            if "UIDPLUS" in self.capabilities:
                self._check(*self.imap.uid("EXPUNGE", uid_set(uids)), "expunge")
            else:
                self._check(*self.imap.expunge(), "expunge")

    def close(self) -> None:
        if self._gone:
            return
        try:
            self.imap.logout()
        except (imaplib.IMAP4.error, OSError, EOFError, ValueError):
            self._abandon()

    def _abandon(self) -> None:
        self._gone = True
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


def _number(value: Any, what: str) -> int:
    text = value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)
    if not text.isdigit():
        raise MailError("protocol", f"The server sent a malformed {what}: {text[:80]!r}.")
    return int(text)


def _quote(folder: str) -> str:
    if any(c in folder for c in "\r\n\0"):
        raise MailError("folder", "A folder name cannot contain line breaks.")
    folder = folder_name_encode(folder)
    if re.fullmatch(r"[A-Za-z0-9._/&,+-]+", folder):
        return folder
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


def folder_name_encode(name: str) -> str:
    """A folder name as IMAP carries it: modified UTF-7 (RFC 3501 5.1.3), the only form a
    server without UTF8=ACCEPT takes for a name beyond ASCII (imaplib sends ASCII alone).
    A name already in that form (as a server lists it) is kept as it is."""
    if _is_modified_utf7(name):
        return name
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            utf16 = "".join(pending).encode("utf-16-be")
            out.append(
                "&" + base64.b64encode(utf16).decode("ascii").rstrip("=").replace("/", ",") + "-"
            )
            pending.clear()

    for char in name:
        if " " <= char <= "~":
            flush()
            out.append("&-" if char == "&" else char)
        else:
            pending.append(char)
    flush()
    return "".join(out)


def _is_modified_utf7(name: str) -> bool:
    if "&" not in name or not all(" " <= c <= "~" for c in name):
        return False
    for run in re.findall(r"&([^-]*)(-|$)", name):
        encoded, end = run
        if not end:
            return False
        if not encoded:
            continue
        try:
            padded = encoded.replace(",", "/") + "=" * (-len(encoded) % 4)
            decoded = base64.b64decode(padded, validate=True).decode("utf-16-be")
        except ValueError:
            return False
        if not decoded or any(" " <= c <= "~" for c in decoded):
            return False
    return True


def _text(value: Any) -> str:
    if isinstance(value, list):
        value = b" ".join(v for v in value if isinstance(v, bytes))
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    text = str(value)
    # imaplib wraps the server's words: "AUTHENTICATE command error: NO [b'...']"
    inner = re.search(r"\[b['\"](.*)['\"]\]", text)
    return inner.group(1) if inner else text
