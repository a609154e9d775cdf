"""Reads for mailboxes."""

from __future__ import annotations

from mailgrant.mailboxes.models import Mailbox
from mailgrant.oauth.models import Grant
from mailgrant.oauth.selectors import grant_default_for


def mailbox_grant(*, mailbox: Mailbox) -> Grant | None:
    if mailbox.grant_id:
        return mailbox.grant
    return grant_default_for(client=mailbox.oauth_client) if mailbox.oauth_client else None
