"""IMAP IDLE (RFC 2177) with asyncio: one event loop holds every watched mailbox's connection,
so hundreds of IDLE mailboxes are hundreds of sockets and coroutines, not threads.

A watcher connects (SSL/TLS, STARTTLS or plaintext as the mailbox's Endpoint), logs in (a
password, or XOAUTH2 / OAUTHBEARER with a token from `get_token`, called in a thread so the
loop never blocks on the database or the provider), selects the folder and IDLEs. It reports
new mail (`* n EXISTS` above the count it knows) and, on every (re)connection, whether the
folder changed since it last looked (EXISTS, UIDNEXT, UIDVALIDITY). It re-issues IDLE before
the server's inactivity timeout, reconnects with a fresh token before the current one expires,
and after any drop reconnects with backoff. It only watches: fetching is the poller's.

No Django here: plain values in, events out."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import random
import re
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from mailgrant.mailboxes.protocol import sasl
from mailgrant.mailboxes.protocol.imap import folder_name_encode
from mailgrant.mailboxes.protocol.transport import (
    NONE,
    SSL,
    STARTTLS,
    AuthRefused,
    Endpoint,
    Login,
    MailError,
    PasswordLogin,
    connect_error,
    sasl_message,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

# RFC 2177: servers may drop an IDLE client after 30 minutes of inactivity, so a client
# re-issues IDLE at least every 29.
RENEW_SECONDS = 29 * 60
# A connection is renewed with a fresh token this long before the current one expires.
TOKEN_MARGIN_SECONDS = 120.0
RECONNECT_BASE_SECONDS = 1.0
RECONNECT_CAP_SECONDS = 300.0
# The shortest IDLE between reconnections, however short-lived the tokens.
MIN_IDLE_SECONDS = 1.0
MAX_LINE = 64 * 1024
MAX_LITERAL = 1024 * 1024

_EXISTS = re.compile(rb"^\* (\d+) EXISTS\b", re.I)
_EXPUNGE = re.compile(rb"^\* (\d+) EXPUNGE\b", re.I)
_UIDNEXT = re.compile(rb"\[UIDNEXT (\d+)\]", re.I)
_UIDVALIDITY = re.compile(rb"\[UIDVALIDITY (\d+)\]", re.I)
_LITERAL = re.compile(rb"\{(\d+)\+?\}\r?\n$")
_CAPABILITY = re.compile(rb"(?:^\* CAPABILITY |\[CAPABILITY )([^\]\r\n]*)", re.I)
_LOGIN_SAFE = re.compile(r"[\x20-\x7e]*")


@dataclass(frozen=True)
class IdleTarget:
    """What to watch. `token_expires_at`, asked after each token, says until when (epoch
    seconds) the token just taken is valid, None when unknown."""

    key: int
    endpoint: Endpoint
    login: Login
    folder: str = "INBOX"
    token_expires_at: Callable[[], float | None] | None = None


@dataclass(frozen=True)
class IdleSettings:
    renew_seconds: float = RENEW_SECONDS
    token_margin_seconds: float = TOKEN_MARGIN_SECONDS
    reconnect_base_seconds: float = RECONNECT_BASE_SECONDS
    reconnect_cap_seconds: float = RECONNECT_CAP_SECONDS


@dataclass(frozen=True)
class FolderLook:
    exists: int
    uidnext: int | None
    uidvalidity: int | None


@dataclass(frozen=True)
class IdleEvent:
    """`kind`: "changed" (on a (re)connection: the folder is not as last seen, or the
    connection is back after failures), "exists" (new mail while idling), "error" (the
    connection failed; `message` says why, and the watcher reconnects with backoff)."""

    key: int
    kind: str
    exists: int = 0
    message: str = ""
    error: Exception | None = None  # what failed: a MailError, or the token's ServiceError


OnEvent = Callable[[IdleEvent], Awaitable[None]]


@dataclass
class IdleStats:
    connects: int = 0
    renewals: int = 0
    token_reconnects: int = 0
    failures: int = 0
    consecutive_failures: int = 0
    connected: bool = False
    last_error: str = ""


class _Connection:
    """One IMAP connection on asyncio streams, tagged commands and untagged lines."""

    def __init__(
        self, endpoint: Endpoint, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.endpoint = endpoint
        self.reader = reader
        self.writer = writer
        self.capabilities: set[str] = set()
        self._tag = 0

    @classmethod
    async def open(cls, endpoint: Endpoint) -> _Connection:
        context: ssl.SSLContext | None = (
            endpoint.ssl_context() if endpoint.security == SSL else None
        )
        if endpoint.security not in (SSL, STARTTLS, NONE):
            raise MailError("protocol", f"Unknown security {endpoint.security!r}.")
        try:
            reader, writer = await _within(
                asyncio.open_connection(
                    endpoint.host,
                    endpoint.port,
                    ssl=context,
                    server_hostname=endpoint.host if context else None,
                    limit=MAX_LINE,
                ),
                endpoint.timeout,
            )
        except (OSError, TimeoutError) as exc:
            raise connect_error(exc, endpoint) from None
        conn = cls(endpoint, reader, writer)
        try:
            greeting = await conn.line()
            if not greeting.upper().startswith((b"* OK", b"* PREAUTH")):
                raise MailError("protocol", f"Not an IMAP greeting: {_text(greeting)[:120]}")
            conn._note_capabilities(greeting)
            if endpoint.security == STARTTLS:
                await conn.command("STARTTLS")
                try:
                    await _within(
                        writer.start_tls(endpoint.ssl_context(), server_hostname=endpoint.host),
                        endpoint.timeout,
                    )
                except (OSError, TimeoutError) as exc:
                    raise connect_error(exc, endpoint) from None
                conn.capabilities = set()
            if not conn.capabilities:
                await conn.command("CAPABILITY")
        except BaseException:
            conn.close()
            raise
        return conn

    def _note_capabilities(self, line: bytes) -> None:
        if found := _CAPABILITY.search(line):
            self.capabilities = {
                c.upper() for c in found.group(1).decode("ascii", "replace").split()
            }

    async def line(self) -> bytes:
        """One response line, with any literals it announces folded in (bounded); a server
        that says nothing within the endpoint's timeout is an error."""
        found = await self.line_within(self.endpoint.timeout)
        if found is None:
            raise MailError(
                "connect",
                f"{self.endpoint.host}:{self.endpoint.port} did not answer in time.",
                transient=True,
                cause="timeout",
            )
        return found

    async def line_within(self, wait: float) -> bytes | None:
        """One response line, or None when none began within `wait` seconds."""
        try:
            data = await _within(self.reader.readline(), wait)
        except TimeoutError:
            return None
        except ValueError:  # a line beyond the reader's limit
            raise MailError("protocol", "The server sent an overlong line.") from None
        except OSError as exc:
            raise MailError(
                "protocol",
                f"{self.endpoint.host}:{self.endpoint.port} broke off the connection: {exc}",
                transient=True,
            ) from None
        try:
            if not data:
                raise MailError(
                    "protocol",
                    f"{self.endpoint.host}:{self.endpoint.port} closed the connection.",
                    transient=True,
                )
            while found := _LITERAL.search(data):
                size = int(found.group(1))
                if size > MAX_LITERAL:
                    raise MailError("protocol", f"The server announced a {size}-byte literal.")
                rest = self.endpoint.timeout
                data += await _within(self.reader.readexactly(size), rest)
                data += await _within(self.reader.readline(), rest)
        except TimeoutError:
            raise MailError(
                "protocol", "The server stopped inside a reply.", transient=True
            ) from None
        except ValueError:  # a line beyond the reader's limit
            raise MailError("protocol", "The server sent an overlong line.") from None
        except (OSError, asyncio.IncompleteReadError) as exc:
            raise MailError(
                "protocol",
                f"{self.endpoint.host}:{self.endpoint.port} broke off the connection: {exc}",
                transient=True,
            ) from None
        return data

    async def send(self, text: str | bytes) -> None:
        data = text.encode() if isinstance(text, str) else text
        try:
            self.writer.write(data + b"\r\n")
            await _within(self.writer.drain(), self.endpoint.timeout)
        except OSError as exc:
            raise MailError(
                "protocol", f"Cannot write to the server: {exc}", transient=True
            ) from None

    def next_tag(self) -> str:
        self._tag += 1
        return f"I{self._tag}"

    async def command(
        self,
        text: str,
        *,
        untagged: Callable[[bytes], None] | None = None,
        continuation: Callable[[bytes], bytes] | None = None,
        secret: bool = False,
    ) -> bytes:
        """Send `text` tagged; the tagged OK line (a NO or BAD is an error naming the reply;
        `secret`: the command itself is never repeated in one)."""
        tag = self.next_tag()
        await self.send(f"{tag} {text}")
        while True:
            line = await self.line()
            if line.startswith(b"+"):
                if continuation is None:
                    raise MailError("protocol", "The server asked for more than was sent.")
                await self.send(continuation(line[1:].strip()))
                continue
            if line.startswith(b"* "):
                self._note_capabilities(line)
                if untagged:
                    untagged(line)
                continue
            if line.startswith(tag.encode() + b" "):
                status = line[len(tag) + 1 :]
                if status.upper().startswith(b"OK"):
                    self._note_capabilities(line)
                    return line
                verb = "a login" if secret else text.split(" ", 1)[0]
                raise _Refused(verb, _text(status))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


class _Refused(MailError):
    def __init__(self, verb: str, reply: str) -> None:
        super().__init__("protocol", f"The server refused {verb}: {reply}")
        self.reply = reply


class IdleWatcher:
    """Watches one mailbox until cancelled; `on_event` is awaited for every event."""

    def __init__(
        self,
        target: IdleTarget,
        on_event: OnEvent,
        *,
        settings: IdleSettings | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.target = target
        self.on_event = on_event
        self.settings = settings or IdleSettings()
        self.stats = IdleStats()
        self.last_look: FolderLook | None = None
        self._rng = rng or random.Random()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    def stop(self) -> None:
        """End the watch (on the loop's thread): its connection is closed."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()

    async def run(self) -> None:
        self._task = asyncio.current_task()  # type: ignore[assignment]
        while not self._stopping:
            try:
                await self._session()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # whatever failed, the watch goes on
                if not hasattr(exc, "message"):  # not a MailError nor the token's error
                    log.exception("IDLE on mailbox %s failed unexpectedly", self.target.key)
                await self._failed(exc)

    async def _failed(self, exc: Exception) -> None:
        message = str(getattr(exc, "message", "") or f"unexpected: {type(exc).__name__}")
        self.stats.connected = False
        self.stats.failures += 1
        self.stats.consecutive_failures += 1
        self.stats.last_error = message
        with contextlib.suppress(Exception):
            await self.on_event(IdleEvent(self.target.key, "error", message=message, error=exc))
        step = min(
            self.settings.reconnect_cap_seconds,
            self.settings.reconnect_base_seconds * 2 ** (self.stats.consecutive_failures - 1),
        )
        await asyncio.sleep(step / 2 + self._rng.uniform(0, step / 2))

    async def _session(self) -> None:
        conn = await _Connection.open(self.target.endpoint)
        try:
            expires = await self._login(conn)
            if "IDLE" not in conn.capabilities:
                await conn.command("CAPABILITY")
            look = await self._select(conn)
            self.stats.connects += 1
            self.stats.connected = True
            back = self.stats.consecutive_failures > 0
            self.stats.consecutive_failures = 0
            if look != self.last_look or back:
                self.last_look = look
                await self.on_event(IdleEvent(self.target.key, "changed", exists=look.exists))
            if "IDLE" not in conn.capabilities:
                raise MailError("protocol", "The server does not offer IDLE.")
            await self._idle(conn, look.exists, expires)
            with contextlib.suppress(MailError):
                await conn.command("LOGOUT")
        finally:
            self.stats.connected = False
            conn.close()

    async def _login(self, conn: _Connection) -> float | None:
        """Log in; until when (monotonic) the token used stays valid, None for a password."""
        login = self.target.login
        if isinstance(login, PasswordLogin):
            await self._password_login(conn, login)
            return None
        mechanism = login.mechanism.upper()
        if f"AUTH={mechanism}" not in conn.capabilities:
            raise MailError("auth", f"The server does not offer {mechanism}.")
        token = await asyncio.to_thread(login.get_token)
        expires_at = (
            await asyncio.to_thread(self.target.token_expires_at)
            if self.target.token_expires_at
            else None
        )
        message = sasl_message(login, self.target.endpoint, token)
        challenges: list[bytes] = []

        def respond(challenge: bytes) -> bytes:
            if challenges or challenge:
                challenges.append(challenge)
                return b""  # the error challenge is answered with an empty line
            challenges.append(b"")
            return sasl.encode(message).encode()

        try:
            await conn.command(f"AUTHENTICATE {mechanism}", continuation=respond, secret=True)
        except _Refused as exc:
            details = next((sasl.decode_error(c) for c in challenges if c), None)
            raise AuthRefused(
                f"The server refused the {mechanism} token: {exc.reply}",
                details=details,
                temporary="UNAVAILABLE" in exc.reply.upper(),
            ) from None
        if expires_at is None:
            return None
        return time.monotonic() + max(0.0, expires_at - time.time())

    async def _password_login(self, conn: _Connection, login: PasswordLogin) -> None:
        user, password = login.username, login.password
        try:
            if _LOGIN_SAFE.fullmatch(user + password) and "LOGINDISABLED" not in conn.capabilities:
                await conn.command(f"LOGIN {_quoted(user)} {_quoted(password)}", secret=True)
            else:
                plain = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
                await conn.command(
                    "AUTHENTICATE PLAIN", continuation=lambda _: plain.encode(), secret=True
                )
        except _Refused as exc:
            raise AuthRefused(
                f"The server refused the password login: {exc.reply}",
                temporary="UNAVAILABLE" in exc.reply.upper(),
            ) from None

    async def _select(self, conn: _Connection) -> FolderLook:
        exists = 0
        uidnext = uidvalidity = None

        def untagged(line: bytes) -> None:
            nonlocal exists, uidnext, uidvalidity
            if m := _EXISTS.match(line):
                exists = int(m.group(1))
            if m := _UIDNEXT.search(line):
                uidnext = int(m.group(1))
            if m := _UIDVALIDITY.search(line):
                uidvalidity = int(m.group(1))

        folder = self.target.folder or "INBOX"
        if any(c in folder for c in "\r\n\0"):
            raise MailError("folder", "A folder name cannot contain line breaks.")
        try:
            # EXAMINE: read-only, so watching never changes \Recent or any flag.
            await conn.command(f"EXAMINE {_quoted(folder_name_encode(folder))}", untagged=untagged)
        except _Refused as exc:
            raise MailError("folder", f"Cannot open folder {folder!r}: {exc.reply}") from None
        return FolderLook(exists=exists, uidnext=uidnext, uidvalidity=uidvalidity)

    async def _idle(self, conn: _Connection, exists: int, token_until: float | None) -> None:
        """IDLE, re-issued every renew_seconds, until the token is about to expire."""
        # At most a quarter of what the token had left at login: a short-lived token must not
        # be always "about to expire", or the session would reconnect (and refresh) at once.
        margin = self.settings.token_margin_seconds
        if token_until is not None:
            margin = min(margin, max(0.0, token_until - time.monotonic()) / 4)
        while True:
            now = time.monotonic()
            renew_at = now + self.settings.renew_seconds
            leave = token_until is not None and token_until - margin <= renew_at
            stop_at = token_until - margin if token_until is not None and leave else renew_at
            stop_at = max(stop_at, now + MIN_IDLE_SECONDS)  # a token shorter than the margin
            tag = conn.next_tag()
            await conn.send(f"{tag} IDLE")
            while True:  # until the server agrees to idle
                line = await conn.line()
                if line.startswith(b"+"):
                    break
                if line.startswith(tag.encode() + b" "):
                    raise MailError("protocol", f"The server refused IDLE: {_text(line)}")
                exists = await self._untagged(line, exists)
            while not self._stopping and (left := stop_at - time.monotonic()) > 0:
                waited = await conn.line_within(left)
                if waited is None:
                    break
                exists = await self._untagged(waited, exists)
            await conn.send("DONE")
            while True:
                line = await conn.line()
                if line.startswith(tag.encode() + b" "):
                    if not line[len(tag) + 1 :].upper().startswith(b"OK"):
                        raise MailError("protocol", f"IDLE ended badly: {_text(line)}")
                    break
                exists = await self._untagged(line, exists)
            if leave:
                self.stats.token_reconnects += 1
                return  # reconnect, logging in with a fresh token
            self.stats.renewals += 1

    async def _untagged(self, line: bytes, exists: int) -> int:
        if m := _EXISTS.match(line):
            count = int(m.group(1))
            if count > exists:
                self.last_look = None  # the next connection reports the folder again
                await self.on_event(IdleEvent(self.target.key, "exists", exists=count))
            return count
        if _EXPUNGE.match(line):
            return max(0, exists - 1)
        if line.upper().startswith(b"* BYE"):
            raise MailError(
                "protocol", f"The server ended the session: {_text(line)}", transient=True
            )
        return exists


async def _within(awaitable: Awaitable[T], seconds: float) -> T:
    """`awaitable`, or TimeoutError after `seconds`. asyncio.timeout rather than wait_for:
    Python 3.11's wait_for can swallow a cancellation that comes as the awaitable finishes,
    and a watcher told to stop must stop."""
    async with asyncio.timeout(seconds):
        return await awaitable


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace").strip()
