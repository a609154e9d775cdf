"""Folder names beyond ASCII go to the server in modified UTF-7 (RFC 3501 5.1.3); a name
already in that form, as a server lists it, goes as it is."""

from __future__ import annotations

import pytest

from mailgrant.mailboxes.protocol.imap import folder_name_encode


@pytest.mark.parametrize(
    ("name", "sent"),
    [
        ("INBOX", "INBOX"),
        # RFC 3501 5.1.3's own example.
        ("~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"),
        ("Entwürfe", "Entw&APw-rfe"),
        ("Tom & Jerry", "Tom &- Jerry"),
        ("A&B", "A&-B"),
        ("Sent Items", "Sent Items"),
        ("☺!", "&Jjo-!"),
        # Already modified UTF-7: kept.
        ("~peter/mail/&U,BTFw-/&ZeVnLIqe-", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"),
        ("Entw&APw-rfe", "Entw&APw-rfe"),
        # "&AGE-" would decode to plain "a", which modified UTF-7 never encodes: a literal name.
        ("&AGE-", "&-AGE-"),
    ],
)
def test_folder_names_in_modified_utf7(name: str, sent: str) -> None:
    assert folder_name_encode(name) == sent
