"""Composing a message from its parts, and checking addresses: plain values in, the wire bytes
out, no Django.

Every header value is refused when its decoded form holds a control character: the email
package decodes RFC 2047 encoded words when it parses a value and, before CPython 3.11.10 /
3.12.5 (CVE-2024-6923), writes a decoded CR/LF out raw when it folds the header again. The
bytes are generated with CRLF line ends and read back; a header set that differs from the one
composed is refused rather than sent."""

from __future__ import annotations

import email
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy as email_policy
from email.errors import HeaderParseError, MessageError
from email.message import EmailMessage, Message
from email.utils import make_msgid, parseaddr
from typing import Any

# CRLF on the wire (RFC 5321 2.3.8); patched interpreters also check each generated header.
POLICY = email_policy.SMTP
if hasattr(POLICY, "verify_generated_headers"):
    POLICY = POLICY.clone(verify_generated_headers=True)

# RFC 2045 type "/" subtype: tokens, nothing else (no parameters, no whitespace).
_TOKEN = r"[A-Za-z0-9!#$%&'*+.^_`|~-]+"
_CONTENT_TYPE = re.compile(rf"{_TOKEN}/{_TOKEN}")
_HEADER_ERRORS = (IndexError, ValueError, TypeError, HeaderParseError, MessageError)
# Where a header of the top-level message comes from, to name the field at fault.
_FIELD_OF = {
    "from": "sender",
    "message-id": "sender",
    "to": "to",
    "cc": "cc",
    "subject": "subject",
}


class MessageInvalid(ValueError):
    """`field` (sender, to, cc, recipients, subject, attachments, ...) cannot go into a mail
    header as it is."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class AddressInvalid(MessageInvalid):
    """`field` holds something that is not one e-mail address."""


@dataclass(frozen=True)
class Attachment:
    filename: str
    content: bytes
    content_type: str = "application/octet-stream"


def is_control(character: str) -> bool:
    """A C0/C1 control or a Unicode line or paragraph separator: each ends a line somewhere."""
    return unicodedata.category(character) in {"Cc", "Zl", "Zp"}


def _has_control(text: str) -> bool:
    return any(is_control(c) for c in text)


def check_addresses(field: str, addresses: Sequence[str]) -> None:
    """Each entry exactly one address (a display name allowed): no control characters, raw or
    encoded, one @, and the header parser and parseaddr agree on it. Two addresses in one entry
    are refused, not split: the parsers of this interpreter disagree on such lists
    (CVE-2023-27043), and a list of entries already says "several"."""
    for address in addresses:
        shown = repr(address[:80])
        if _has_control(address):
            raise AddressInvalid(field, f"{shown} is not an e-mail address")
        try:
            header = POLICY.header_factory("To", address)
            parsed = header.addresses
        except _HEADER_ERRORS:
            raise AddressInvalid(field, f"{shown} is not an e-mail address") from None
        if len(parsed) > 1:
            raise AddressInvalid(
                field, f"{shown} holds {len(parsed)} addresses: give each as its own entry"
            )
        _, addr = parseaddr(address)
        if addr and not addr.isascii():
            raise AddressInvalid(
                field, f"{shown}: internationalized addresses (SMTPUTF8) are not supported"
            )
        if (
            len(parsed) != 1
            or header.defects  # e.g. a second address the parser dropped
            or header.groups[0].display_name is not None  # a group, "name: a@b;"
            or not addr
            or parsed[0].addr_spec != addr
            or addr.count("@") != 1
            or not all(addr.partition("@")[::2])
            or any(c.isspace() for c in addr)
            or _has_control(parsed[0].display_name)
        ):
            raise AddressInvalid(field, f"{shown} is not an e-mail address")


def compose(
    *,
    sender: str,
    to: Sequence[str] = (),
    cc: Sequence[str] = (),
    subject: str = "",
    text: str = "",
    html: str = "",
    attachments: Sequence[Attachment] = (),
) -> bytes:
    """The message as it goes into SMTP DATA: CRLF line ends, every header checked."""
    message = EmailMessage(policy=POLICY)
    headers = (("sender", "From", [sender]), ("to", "To", to), ("cc", "Cc", cc))
    for field, header, addresses in headers:
        if addresses:
            check_addresses(field, addresses)
            _set(message, field, header, ", ".join(addresses))
    _check_text("subject", subject)
    _set(message, "subject", "Subject", subject)
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    message["Date"] = datetime.now(UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")
    message.set_content(text or "")
    if html:
        message.add_alternative(html, subtype="html")
    for number, attachment in enumerate(attachments, 1):
        _attach(message, number, attachment)
    for field, name, value in _headers(message):
        _check_header(field, name, value)
    raw = message.as_bytes()
    _check_wire(message, raw)
    return raw


def crlf(raw: bytes) -> bytes:
    """Every line end CRLF, as SMTP DATA requires (smtplib leaves bytes as they are)."""
    return re.sub(rb"\r\n|\r|\n", b"\r\n", raw)


def _check_text(field: str, value: str) -> None:
    if _has_control(value):
        raise MessageInvalid(field, "must not contain control characters or line breaks")


def _set(message: Message, field: str, header: str, value: str) -> None:
    try:  # the header parser's own refusals (it raises IndexError on some input)
        message[header] = value
    except _HEADER_ERRORS:
        raise MessageInvalid(field, f"cannot be a {header} header") from None


def _attach(message: EmailMessage, number: int, attachment: Attachment) -> None:
    where = f"attachment {number}"
    _check_text("attachments", attachment.filename)
    if not attachment.filename.strip():
        raise MessageInvalid("attachments", f"{where} needs a file name")
    if not _CONTENT_TYPE.fullmatch(attachment.content_type):
        raise MessageInvalid(
            "attachments",
            f"{where}: content type {attachment.content_type[:80]!r} is no type/subtype",
        )
    maintype, _, subtype = attachment.content_type.partition("/")
    try:
        message.add_attachment(
            attachment.content, maintype=maintype, subtype=subtype, filename=attachment.filename
        )
    except _HEADER_ERRORS as exc:
        raise MessageInvalid("attachments", f"{where} cannot be attached: {exc}") from None


def _headers(message: Message) -> Iterable[tuple[str, str, Any]]:
    """(field at fault, name, header object) of every header of every part."""
    for part in message.walk():
        field = "attachments" if part.get_content_disposition() == "attachment" else "message"
        for name, value in part.items():
            yield (_FIELD_OF.get(name.lower(), field) if part is message else field), name, value


def _check_header(field: str, name: str, value: Any) -> None:
    """The decoded value, each decoded parameter and each address part: no control character."""
    texts = [str(value)]
    texts += [str(v) for v in getattr(value, "params", {}).values()]
    for address in getattr(value, "addresses", ()):
        texts += [address.display_name, address.username, address.domain]
    if any(_has_control(t) for t in texts):
        raise MessageInvalid(
            field, f"holds a control character or line break once decoded (its {name} header)"
        )


def _shape(message: Message) -> list[list[tuple[str, str]]]:
    """Each part's headers, names and decoded values (whitespace runs as one space)."""
    return [
        [(name.lower(), " ".join(str(value).split())) for name, value in part.items()]
        for part in message.walk()
    ]


def _check_wire(message: Message, raw: bytes) -> None:
    """The last line of defence: CRLF only, and the bytes read back as the message composed."""
    if b"\n" in raw.replace(b"\r\n", b"") or b"\r" in raw.replace(b"\r\n", b""):
        raise MessageInvalid("message", "the composed message has a bare line break")
    try:
        read_back = email.message_from_bytes(raw, policy=POLICY)
    except _HEADER_ERRORS:
        raise MessageInvalid("message", "the composed message does not read back") from None
    for intended, found in zip(_shape(message), _shape(read_back), strict=False):
        if intended != found:
            names = {n for n, _ in intended} ^ {n for n, _ in found}
            raise MessageInvalid(
                "message",
                "the composed headers do not read back as composed"
                + (f" ({', '.join(sorted(names))})" if names else ""),
            )
    if len(_shape(message)) != len(_shape(read_back)):
        raise MessageInvalid("message", "the composed parts do not read back as composed")
