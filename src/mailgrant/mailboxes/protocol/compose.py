"""Composing a message from its parts, and checking addresses: plain values in, an EmailMessage
out, no Django."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.errors import HeaderParseError
from email.message import EmailMessage
from email.utils import make_msgid, parseaddr


class AddressInvalid(ValueError):
    """`field` (sender, to, cc, recipients) holds something that is not an e-mail address."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Attachment:
    filename: str
    content: bytes
    content_type: str = "application/octet-stream"


def check_addresses(field: str, addresses: Sequence[str]) -> None:
    """Each one plainly an address (a display name allowed): no control characters, one @."""
    for address in addresses:
        _, addr = parseaddr(address)
        if (
            not addr
            or addr.count("@") != 1
            or not all(addr.partition("@")[::2])
            or any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in addr)
            or any(ord(c) < 32 or ord(c) == 127 for c in address)
        ):
            raise AddressInvalid(field, f"{address[:80]!r} is not an e-mail address")


def compose(
    *,
    sender: str,
    to: Sequence[str] = (),
    cc: Sequence[str] = (),
    subject: str = "",
    text: str = "",
    html: str = "",
    attachments: Sequence[Attachment] = (),
) -> EmailMessage:
    message = EmailMessage()
    headers = (("sender", "From", [sender]), ("to", "To", to), ("cc", "Cc", cc))
    for given_as, header, addresses in headers:
        if addresses:
            check_addresses(given_as, addresses)
            try:  # the header parser's own refusals (it raises IndexError on some input)
                message[header] = ", ".join(addresses)
            except (IndexError, ValueError, TypeError, HeaderParseError):
                raise AddressInvalid(given_as, "not a list of e-mail addresses") from None
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    message["Date"] = datetime.now(UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")
    message.set_content(text or "")
    if html:
        message.add_alternative(html, subtype="html")
    for attachment in attachments:
        maintype, _, subtype = attachment.content_type.partition("/")
        message.add_attachment(
            attachment.content,
            maintype=maintype or "application",
            subtype=subtype or "octet-stream",
            filename=attachment.filename,
        )
    return message
