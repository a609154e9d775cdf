"""The local message store: one file of raw RFC 822 bytes per message under MAILGRANT_HOME.

A batch is written (temporary name, then rename) and made durable with one filesystem sync
before its index rows are committed; only then may the server be told to move or delete it."""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from email.errors import HeaderParseError
from email.header import decode_header, make_header
from email.parser import BytesHeaderParser
from email.utils import getaddresses, parsedate_to_datetime
from pathlib import Path

_SAFE = re.compile(r"[^A-Za-z0-9._-]")
_HEADER_END = re.compile(rb"\r?\n\r?\n")
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


@dataclass(frozen=True)
class Envelope:
    message_id: str
    sender: str
    recipients: str
    subject: str
    date: datetime | None


def message_path(*, mailbox_id: int, folder: str, uidvalidity: int, uid: str) -> str:
    """Where a message lives, relative to the store: stable, so a re-fetch overwrites."""
    folder_key = _SAFE.sub("_", folder)[:40] + "-" + hashlib.sha256(folder.encode()).hexdigest()[:8]
    uid_key = _SAFE.sub("_", uid)[:80]
    if uid_key != uid:
        uid_key += "-" + hashlib.sha256(uid.encode()).hexdigest()[:8]
    return f"{mailbox_id}/{folder_key}/{uidvalidity}/{uid_key}.eml"


def write_message(root: Path, relative: str, raw: bytes) -> None:
    """Write `raw` under a temporary name and rename it into place (not yet synced)."""
    final = root / relative
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.tmp")
    with open(tmp, "wb") as handle:
        handle.write(raw)
    os.replace(tmp, final)


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


def envelope(raw: bytes) -> Envelope:
    """The index fields, from the header block only; broken headers give what they can."""
    match = _HEADER_END.search(raw)
    header_bytes = raw[: match.start()] if match else raw[:65536]
    headers = BytesHeaderParser().parsebytes(header_bytes + b"\r\n\r\n")

    def text(name: str) -> str:
        value = headers.get(name)
        if value is None:
            return ""
        try:
            return str(make_header(decode_header(str(value))))[:998]
        except (HeaderParseError, UnicodeError, LookupError, ValueError):
            return str(value)[:998]

    date = None
    if headers.get("Date"):
        try:
            date = parsedate_to_datetime(str(headers["Date"]))
            if date is not None and date.tzinfo is None:
                date = None
        except (TypeError, ValueError, IndexError):
            date = None
    recipients = ", ".join(
        addr for _, addr in getaddresses([str(v) for v in headers.get_all("To", [])]) if addr
    )
    return Envelope(
        message_id=text("Message-ID").strip(),
        sender=text("From"),
        recipients=recipients[:5000],
        subject=text("Subject"),
        date=date,
    )
