"""SASL messages for OAuth 2.0 bearer tokens: pure functions, no I/O.

XOAUTH2 is Google's and Microsoft's mechanism; OAUTHBEARER is RFC 7628. Both return the
client's initial response *before* base64 (imaplib and smtplib encode it themselves)."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

XOAUTH2 = "XOAUTH2"
OAUTHBEARER = "OAUTHBEARER"
MECHANISMS = {"xoauth2": XOAUTH2, "oauthbearer": OAUTHBEARER}


def xoauth2(user: str, token: str) -> str:
    """``user=<user>^Aauth=Bearer <token>^A^A``."""
    _check(user, token)
    return f"user={user}\x01auth=Bearer {token}\x01\x01"


def oauthbearer(user: str, token: str, host: str = "", port: int | None = None) -> str:
    """RFC 7628: a GS2 header naming the user, then key=value pairs separated by ^A."""
    _check(user, token)
    # RFC 5801 saslname: "," and "=" are escaped.
    saslname = user.replace("=", "=3D").replace(",", "=2C")
    parts = [f"n,a={saslname},"]
    if host:
        parts.append(f"host={host}")
    if port is not None:
        parts.append(f"port={port}")
    parts.append(f"auth=Bearer {token}")
    return "\x01".join(parts) + "\x01\x01"


def initial_response(
    mechanism: str, *, user: str, token: str, host: str = "", port: int | None = None
) -> str:
    if mechanism.upper() == XOAUTH2:
        return xoauth2(user, token)
    if mechanism.upper() == OAUTHBEARER:
        return oauthbearer(user, token, host, port)
    raise ValueError(f"unknown SASL mechanism {mechanism!r}")


def encode(message: str) -> str:
    return base64.b64encode(message.encode()).decode()


def decode_error(challenge: bytes | str) -> dict[str, Any] | None:
    """The server's error challenge (base64 JSON such as ``{"status":"401",...}``), decoded;
    None when it is not one."""
    raw = challenge.encode() if isinstance(challenge, str) else challenge
    raw = raw.strip()
    if not raw:
        return None
    if not raw.startswith(b"{"):
        try:
            raw = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            return None
    try:
        value = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _check(user: str, token: str) -> None:
    # A control character would end a field early: another user's name, or a forged field.
    for name, value in (("user", user), ("token", token)):
        if not value:
            raise ValueError(f"the SASL {name} is empty")
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
            raise ValueError(f"the SASL {name} contains a control character")
