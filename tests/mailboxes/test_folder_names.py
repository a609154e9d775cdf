"""A folder named beyond ASCII (a German "Entwürfe", a Japanese one) is fetched from and moved
to at the real Dovecot, by the name the person sees, not an unhandled UnicodeEncodeError."""

from __future__ import annotations

import imaplib
from typing import Any

import pytest

from mailgrant.mailboxes.models import Message
from mailgrant.mailboxes.services.fetch import mailbox_fetch
from tests.mailboxes.conftest import message
from tests.servers.dovecot import PASSWORD_USERS

pytestmark = [pytest.mark.django_db, pytest.mark.integration]

USER, PASSWORD = next(iter(PASSWORD_USERS.items()))
# RFC 3501 5.1.3's encodings, written out so the test does not use the code under test.
JAPANESE, JAPANESE_WIRE = "日本語", "&ZeVnLIqe-"
ARCHIVE, ARCHIVE_WIRE = "Entwürfe", "Entw&APw-rfe"


def test_a_folder_beyond_ascii_is_fetched_and_moved_to(dovecot: Any, make_mailbox: Any) -> None:
    raw = message(1, extra="folder-names")
    with imaplib.IMAP4("127.0.0.1", dovecot.imap_port) as imap:
        imap.login(USER, PASSWORD)
        for folder in (JAPANESE_WIRE, ARCHIVE_WIRE):
            imap.create(folder)
        imap.append(JAPANESE_WIRE, "", None, raw)
    mailbox = make_mailbox(
        auth_method="password",
        username=USER,
        password=PASSWORD,
        folder=JAPANESE,
        post_fetch_action=f"move:{ARCHIVE}",
    )
    result = mailbox_fetch(mailbox=mailbox)
    assert (result.fetched, result.errors) == (1, [])
    assert Message.objects.filter(mailbox=mailbox).count() == 1
    with imaplib.IMAP4("127.0.0.1", dovecot.imap_port) as imap:
        imap.login(USER, PASSWORD)
        assert imap.select(JAPANESE_WIRE)[1] == [b"0"]
        assert imap.select(ARCHIVE_WIRE)[1] == [b"1"]
