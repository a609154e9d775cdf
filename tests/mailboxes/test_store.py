"""The message store's pure parts: paths and the narrow header scan."""

import os
from datetime import UTC, datetime

from mailgrant.mailboxes.store import envelope, message_path


def test_envelope_reads_folded_encoded_and_odd_headers() -> None:
    raw = (
        b"Received: from x\r\n\tby y\r\nMessage-ID: <abc@example.test>\r\n"
        b"From: =?utf-8?q?J=C3=B6rg?= <jorg@example.test>\r\n"
        b'To: Alice <alice@example.test>,\r\n "Bob, Jr." <bob@example.org>\r\n'
        b"Subject: =?utf-8?B?w5xiZXIgZGllIFLDvGNrZ2FiZQ==?=\r\n"
        b"Date: Sat, 28 Nov 2026 06:00:00 +0000\r\n\r\nSubject: not a header\r\n"
    )
    found = envelope(raw)
    assert found.message_id == "<abc@example.test>"
    assert found.sender == "Jörg <jorg@example.test>"
    assert found.recipients == "alice@example.test, bob@example.org"
    assert found.subject == "Über die Rückgabe"
    assert found.date == datetime(2026, 11, 28, 6, 0, tzinfo=UTC)


def test_envelope_of_broken_input_gives_what_it_can() -> None:
    assert envelope(b"").message_id == ""
    odd = envelope(b"Subject: =?bogus?x?zzz?=\nDate: someday\n\nbody")
    assert odd.subject == "=?bogus?x?zzz?=" and odd.date is None
    assert envelope(b"\xff\xfe\x00garbage").subject == ""


def test_paths_are_stable_and_safe() -> None:
    one = message_path(mailbox_id=3, folder="INBOX", uidvalidity=7, uid="42")
    assert one == message_path(mailbox_id=3, folder="INBOX", uidvalidity=7, uid="42")
    assert one.startswith("3/INBOX-") and one.endswith("/7/42.eml")
    for folder, uid in (("../../etc", "../passwd"), ("..", ".."), ("a/b", "x/y"), ("", "")):
        path = message_path(mailbox_id=3, folder=folder, uidvalidity=0, uid=uid)
        parts = path.split("/")
        assert len(parts) == 4 and parts[0] == "3" and parts[2] == "0"
        assert not {".", ".."} & set(parts)
        assert os.path.normpath(path) == path


def test_the_store_lives_where_the_setting_says(settings, tmp_path) -> None:
    from mailgrant.mailboxes.store import store_root

    settings.MAILGRANT_MESSAGE_STORE = tmp_path / "bigger-disk" / "messages"
    root = store_root()
    assert root == tmp_path / "bigger-disk" / "messages" and root.is_dir()


def test_envelope_headers_end_at_the_first_empty_line_whatever_the_line_ends() -> None:
    raw = b"From: a@example.test\n\nSubject: body text\r\n\r\nmore body\r\n"
    found = envelope(raw)
    assert found.sender == "a@example.test" and found.subject == ""
