"""The local message store: one file of raw RFC 822 bytes per message under
MAILGRANT_MESSAGE_STORE, the index rows in the database.

A batch's files are written and made durable with one filesystem sync before its index rows
are committed; only then may the server be told to move or delete the messages."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import hashlib
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from email.errors import HeaderParseError
from email.header import decode_header
from email.utils import parsedate_to_datetime
from pathlib import Path

from django.conf import settings

from mailgrant.common.home import private_dirs

_SAFE = re.compile(r"[^A-Za-z0-9._-]")
_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
_HEADER_END = re.compile(rb"\r?\n\r?\n")
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


@dataclass(frozen=True)
class Envelope:
    message_id: str
    sender: str
    recipients: str
    subject: str
    date: datetime | None


@functools.lru_cache(maxsize=256)
def _folder_key(folder: str) -> str:
    return _SAFE.sub("_", folder)[:40] + "-" + hashlib.sha256(folder.encode()).hexdigest()[:8]


def message_path(*, mailbox_id: int, folder: str, uidvalidity: int, uid: str) -> str:
    """Where a message lives, relative to the store: stable, so a re-fetch overwrites."""
    folder_key = _folder_key(folder)
    uid_key = _SAFE.sub("_", uid)[:80]
    if uid_key != uid:
        uid_key += "-" + hashlib.sha256(uid.encode()).hexdigest()[:8]
    return f"{mailbox_id}/{folder_key}/{uidvalidity}/{uid_key}.eml"


def write_message(root: Path, relative: str, raw: bytes) -> None:
    """Write `raw` at its place (owner-only, in owner-only folders), not yet synced. A
    half-written file left by a crash is harmless: no index row points to it until after
    `sync`, and the next fetch writes it again."""
    final = os.path.join(root, relative)  # plain strings: pathlib costs more than the write
    try:
        fd = os.open(final, _WRITE_FLAGS, 0o600)
    except FileNotFoundError:
        private_dirs(os.path.dirname(final))
        fd = os.open(final, _WRITE_FLAGS, 0o600)
    try:
        view = memoryview(raw)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def sync(root: Path, relatives: Iterable[str]) -> None:
    """Make the batch's files and directory entries durable: one syncfs(2) for the whole
    filesystem when the platform has it, else an fsync of each file and folder."""
    paths = [root / r for r in relatives]
    if not paths:
        return
    fd = os.open(root, os.O_RDONLY)
    try:
        if hasattr(_libc, "syncfs") and _libc.syncfs(fd) == 0:
            return
    finally:
        os.close(fd)
    for path in {*paths, *(p.parent for p in paths)}:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# A header the index keeps, with its folded continuation lines, at the start of a line; read
# from the bytes of the header block only (decoding and splitting the whole block, or the full
# email parser, cost more than fetching the message).
_FIELD = re.compile(
    rb"^(message-id|from|to|subject|date)[ \t]*:(.*(?:\r?\n[ \t].*)*)", re.MULTILINE | re.IGNORECASE
)
_UNFOLD = re.compile(r"\r?\n[ \t]+")
# The addresses of a To header, without the full RFC 5322 parser (which costs more than the
# rest of the fetch together); display names are not indexed.
_ADDRESS = re.compile(r"[^\s<>(),;:\"@]+@[^\s<>(),;:\"@]+")


def _header_end(raw: bytes) -> int:
    """Where the header block ends: the first empty line, CRLF or bare LF."""
    match = _HEADER_END.search(raw, 0, 262144)
    return match.start() if match else min(len(raw), 65536)


def _words(value: str) -> str:
    """RFC 2047 encoded words decoded (an unknown charset or a broken word: left as it was)."""
    try:
        return "".join(
            chunk if isinstance(chunk, str) else chunk.decode(charset or "ascii", "replace")
            for chunk, charset in decode_header(value)
        )
    except (HeaderParseError, UnicodeError, LookupError, ValueError):
        return value


def envelope(raw: bytes) -> Envelope:
    """The index fields, read from the header block with a narrow scan; broken headers give
    what they can (the first of a repeated header counts)."""
    fields: dict[bytes, bytes] = {}
    for match in _FIELD.finditer(raw, 0, _header_end(raw)):
        fields.setdefault(match.group(1).lower(), match.group(2))

    def text(key: bytes) -> str:
        value = fields.get(key, b"").decode("utf-8", "replace")
        if "\n" in value:
            value = _UNFOLD.sub(" ", value)
        value = value.strip()
        return (_words(value) if "=?" in value else value)[:998]

    date = None
    if b"date" in fields:
        try:
            date = parsedate_to_datetime(text(b"date"))
            if date is not None and date.tzinfo is None:
                date = None
        except (TypeError, ValueError, IndexError):
            date = None
    recipients = ", ".join(_ADDRESS.findall(fields.get(b"to", b"").decode("utf-8", "replace")))
    return Envelope(
        message_id=fields.get(b"message-id", b"").decode("utf-8", "replace").strip()[:998],
        sender=text(b"from"),
        recipients=recipients[:5000],
        subject=text(b"subject"),
        date=date,
    )


def store_root() -> Path:
    root = Path(settings.MAILGRANT_MESSAGE_STORE)
    private_dirs(root)
    return root
