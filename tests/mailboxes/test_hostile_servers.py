"""A hostile or broken mail server cannot exhaust memory nor cause a 500: a message larger than
the server said is refused while it is read (nothing of it kept, it stays on the server, named
in the fetch's errors, the others fetched), and junk or a broken-off reply is a clear mailbox
error. Against
the hostile servers of tests/servers/hostile_mail.py, through the services and the API."""

from __future__ import annotations

import re
import shutil
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from mailgrant.common.errors import PeerFailed
from mailgrant.mailboxes.models import Mailbox, Message
from mailgrant.mailboxes.services import fetch as fetch_service
from mailgrant.mailboxes.services.fetch import mailbox_fetch
from mailgrant.mailboxes.services.mailboxes import mailbox_save
from mailgrant.mailboxes.services.test import mailbox_test
from mailgrant.mailboxes.store import store_root
from tests.servers.hostile_mail import FakeMessage, HostileImap, HostilePop3, message

pytestmark = pytest.mark.django_db

FLOOD = 48 * 1024 * 1024  # what the liar sends: under MAX_MESSAGE_BYTES, far over its claim
HELD = 8 * 1024 * 1024  # the most the fetch may hold at once against it


def _mailbox(server: Any, protocol: str, **fields: Any) -> Mailbox:
    made = mailbox_save(
        mailbox=Mailbox(
            name=f"hostile-{protocol}-{Mailbox.objects.count() + 1}",
            protocol=protocol,
            direction="incoming",
            host="127.0.0.1",
            port=server.port,
            security="none",
            username="victim@example.test",
            auth_method="password",
            **fields,
        ),
        password="pw",
    )
    shutil.rmtree(store_root() / str(made.pk), ignore_errors=True)  # an earlier test's mailbox
    return made


@pytest.fixture
def imap() -> Iterator[HostileImap]:
    with HostileImap() as server:
        yield server


@pytest.fixture
def pop3() -> Iterator[HostilePop3]:
    with HostilePop3() as server:
        yield server


class _Peak:
    bytes = 0


@contextmanager
def _holding_little() -> Iterator[_Peak]:
    peak = _Peak()
    tracemalloc.start()
    try:
        yield peak
        _, peak.bytes = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak.bytes < HELD, f"the fetch held {peak.bytes} bytes at once"


def _stored(mailbox: Mailbox) -> list[tuple[str, bool]]:
    return list(
        Message.objects.filter(mailbox=mailbox)
        .order_by("uid")
        .values_list("uid", "post_action_done")
    )


def _stored_files(mailbox: Mailbox) -> list[str]:
    folder = store_root() / str(mailbox.pk)
    return sorted(p.name for p in folder.rglob("*.eml")) if folder.exists() else []


# --- claims 100 bytes, sends far more ----------------------------------------------------------


@pytest.mark.parametrize("batch", [1, 200])
def test_imap_message_larger_than_claimed_is_left_and_the_rest_fetched(
    imap, settings, batch
) -> None:
    settings.MAILGRANT_FETCH_BATCH = batch
    liar = FakeMessage(uid=2, claimed=100, announced=FLOOD, flood=FLOOD)
    imap.messages = [message(1), liar, message(3)]
    mailbox = _mailbox(imap, "imap", post_fetch_action="delete")
    with _holding_little():
        result = mailbox_fetch(mailbox=mailbox)
    assert result.fetched == 2 and result.actions == 2
    assert len(result.errors) == 1 and "UID 2" in result.errors[0]
    assert "stays on the server" in result.errors[0]
    # 1 and 3 stored, then deleted on the server; 2 neither stored nor touched.
    assert _stored(mailbox) == [("1", True), ("3", True)]
    assert len(_stored_files(mailbox)) == 2
    stores = " ".join(imap.saw("UID STORE"))
    assert "\\Deleted" in stores and not re.search(r"UID STORE [^ ]*\b2\b", stores)


def test_imap_literal_of_100_gb_is_refused_before_it_is_read(imap) -> None:
    imap.messages = [FakeMessage(uid=1, claimed=100, announced=100_000_000_000, flood=FLOOD)]
    mailbox = _mailbox(imap, "imap")
    with _holding_little():
        result = mailbox_fetch(mailbox=mailbox)
    assert result.fetched == 0 and "100000000000" in result.errors[0]
    assert not Message.objects.exists() and not _stored_files(mailbox)


def test_imap_understated_message_it_cannot_name_fails_the_fetch_cleanly(imap) -> None:
    """With the UID after the body, the literal names no message: nothing to skip by."""
    imap.uid_last = True
    imap.messages = [FakeMessage(uid=1, claimed=100, announced=FLOOD, flood=FLOOD)]
    mailbox = _mailbox(imap, "imap", post_fetch_action="delete")
    with _holding_little(), pytest.raises(PeerFailed) as failed:
        mailbox_fetch(mailbox=mailbox)
    assert failed.value.code == "too_large" and not failed.value.transient
    assert not Message.objects.exists() and not imap.saw("UID STORE")
    mailbox.refresh_from_db()
    assert "more than" in mailbox.last_error


def test_a_server_understating_everything_fails_the_fetch(imap, monkeypatch) -> None:
    monkeypatch.setattr(fetch_service, "MAX_SKIPPED", 2)
    imap.messages = [
        FakeMessage(uid=n, claimed=100, announced=FLOOD, flood=FLOOD) for n in (1, 2, 3)
    ]
    with pytest.raises(PeerFailed) as failed:
        mailbox_fetch(mailbox=_mailbox(imap, "imap"))
    assert failed.value.code == "too_large" and "UID 3" in failed.value.message


def test_pop3_message_larger_than_listed_is_left_and_the_rest_fetched(pop3) -> None:
    liar = FakeMessage(uid=2, claimed=100, flood=FLOOD)
    pop3.messages = [message(1), liar, message(3)]
    mailbox = _mailbox(pop3, "pop3", post_fetch_action="delete")
    with _holding_little():
        result = mailbox_fetch(mailbox=mailbox)
    assert result.fetched == 2 and len(result.errors) == 1 and "uid-2" in result.errors[0]
    assert [uid for uid, _ in _stored(mailbox)] == ["uid-1", "uid-3"]
    assert len(_stored_files(mailbox)) == 2
    # The session that met the liar was dropped without QUIT; the next one deleted 1 and 3.
    assert sorted(pop3.saw("DELE")) == ["DELE 1", "DELE 3"] and len(pop3.saw("QUIT")) == 1
    assert pop3.flooded < FLOOD  # mailgrant hung up long before the liar was done


def test_pop3_liar_is_left_again_on_the_next_fetch(pop3) -> None:
    pop3.messages = [message(1), FakeMessage(uid=2, claimed=100, flood=FLOOD)]
    mailbox = _mailbox(pop3, "pop3")
    first = mailbox_fetch(mailbox=mailbox)
    again = mailbox_fetch(mailbox=mailbox)
    assert (first.fetched, again.fetched, again.already_stored) == (1, 0, 1)
    assert "uid-2" in again.errors[0]
    assert [uid for uid, _ in _stored(mailbox)] == ["uid-1"]


# --- junk and broken-off replies ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("what", "lines"),
    [
        ("LIST", {"list_lines": ["1 100 7"]}),
        ("LIST", {"list_lines": ["one hundred"]}),
        ("LIST", {"list_lines": ["1 10O"]}),
        ("UIDL", {"uidl_lines": ["1"]}),
        ("UIDL", {"uidl_lines": ["x uid-1"]}),
    ],
)
def test_pop3_junk_listing_is_a_mailbox_error(pop3, what, lines) -> None:
    pop3.messages = [message(1)]
    for name, value in lines.items():
        setattr(pop3, name, value)
    mailbox = _mailbox(pop3, "pop3")
    with pytest.raises(PeerFailed) as failed:
        mailbox_fetch(mailbox=mailbox)
    assert failed.value.code == "protocol" and f"malformed {what}" in failed.value.message
    tested = mailbox_test(mailbox=mailbox)
    assert not tested.ok and f"malformed {what}" in tested.message
    assert not Message.objects.exists()


def test_imap_broken_off_mid_fetch_is_a_transient_mailbox_error(imap) -> None:
    imap.messages = [message(1), message(2)]
    imap.break_off_in = "FETCH"
    mailbox = _mailbox(imap, "imap", post_fetch_action="delete")
    with pytest.raises(PeerFailed) as failed:
        mailbox_fetch(mailbox=mailbox)
    assert failed.value.transient and "fetch messages" in failed.value.message
    assert not Message.objects.exists() and not imap.saw("UID STORE")


def test_imap_broken_off_mid_select_fails_the_test_clearly(imap) -> None:
    imap.break_off_in = "SELECT"
    tested = mailbox_test(mailbox=_mailbox(imap, "imap"))
    assert not tested.ok and "broke off the connection" in tested.message


def test_imap_junk_uidvalidity_is_a_mailbox_error(imap) -> None:
    imap.uidvalidity = "abc"
    tested = mailbox_test(mailbox=_mailbox(imap, "imap"))
    assert not tested.ok and "malformed UIDVALIDITY" in tested.message


# --- the API answers a mailbox error, never a 500 ----------------------------------------------


def test_the_api_answers_a_mailbox_error(api, imap, pop3) -> None:
    imap.uid_last = True  # the understated message cannot be named: the fetch fails
    imap.messages = [FakeMessage(uid=1, claimed=100, announced=100_000_000_000, flood=FLOOD)]
    pop3.messages = [message(1)]
    pop3.list_lines = ["1 100 7"]
    too_large = _mailbox(imap, "imap")
    junk = _mailbox(pop3, "pop3")
    fetched = api.post(f"/mailboxes/{too_large.pk}/fetch")
    assert fetched.status_code == 502 and fetched.json()["code"] == "too_large"
    fetched = api.post(f"/mailboxes/{junk.pk}/fetch")
    assert fetched.status_code == 502 and fetched.json()["code"] == "protocol"
    tested = api.post(f"/mailboxes/{junk.pk}/test")
    assert tested.status_code == 200 and not tested.json()["ok"]
    assert "malformed LIST" in tested.json()["message"]
    imap.break_off_in = "SELECT"
    tested = api.post(f"/mailboxes/{too_large.pk}/test")
    assert tested.status_code == 200 and "broke off" in tested.json()["message"]
    imap.messages, imap.break_off_in, imap.uid_last = [message(1)], "FETCH", False
    fetched = api.post(f"/mailboxes/{too_large.pk}/fetch")
    assert fetched.status_code == 503 and fetched.json()["code"] == "protocol"
