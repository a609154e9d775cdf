"""Reads for mailboxes."""

from __future__ import annotations

from mailgrant.mailboxes.models import Mailbox, Message
from mailgrant.mailboxes.store import store_root
from mailgrant.oauth.models import Grant
from mailgrant.oauth.selectors import grant_default_for


def mailbox_grant(*, mailbox: Mailbox) -> Grant | None:
    if mailbox.grant_id:
        return mailbox.grant
    return grant_default_for(client=mailbox.oauth_client) if mailbox.oauth_client else None


def message_raw(*, message_id: int, max_bytes: int) -> bytes | None:
    """The stored raw bytes of message `message_id`, or None when it is gone or larger than
    `max_bytes` (the file's own size decides, not the index's)."""
    path = Message.objects.filter(pk=message_id).values_list("path", flat=True).first()
    if not path:
        return None
    file = store_root() / path
    try:
        with file.open("rb") as handle:
            raw = handle.read(max_bytes + 1)
    except FileNotFoundError:
        return None
    return raw if len(raw) <= max_bytes else None
