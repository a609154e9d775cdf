"""A hostile or broken mail server cannot exhaust memory nor cause a 500: a message larger than
the server said is refused while it is read (nothing of it kept, it stays on the server, what
was stored before it is kept), and junk or a broken-off reply is a clear mailbox error. Against
the hostile servers of tests/servers/hostile_mail.py, through the services and the API."""

from __future__ import annotations

import shutil
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest

from mailgrant.common.errors import PeerFailed
from mailgrant.mailboxes.models import Mailbox, Message
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


def _fetch_holding_little(mailbox: Mailbox) -> PeerFailed:
    tracemalloc.start()
    try:
        with pytest.raises(PeerFailed) as failed:
            mailbox_fetch(mailbox=mailbox)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < HELD, f"the fetch held {peak} bytes at once"
    return failed.value


def _stored_files(mailbox: Mailbox) -> list[str]:
    folder = store_root() / str(mailbox.pk)
    return sorted(p.name for p in folder.rglob("*.eml")) if folder.exists() else []


# --- claims 100 bytes, sends far more ----------------------------------------------------------


def test_imap_message_larger_than_claimed_is_refused_and_stays(imap, settings) -> None:
    settings.MAILGRANT_FETCH_BATCH = 1  # one message a batch: what came before is kept
    liar = FakeMessage(uid=2, claimed=100, announced=FLOOD, flood=FLOOD)
    imap.messages = [message(1), liar, message(3)]
    mailbox = _mailbox(imap, "imap", post_fetch_action="delete")
    error = _fetch_holding_little(mailbox)
    assert error.code == "too_large" and "UID 2" in error.message and not error.transient
    # UID 1 was stored before the liar came: kept (its action runs next time); 2 and 3 are not
    # stored, and nothing was done to any message on the server.
    assert list(Message.objects.values_list("uid", "post_action_done")) == [("1", False)]
    assert len(_stored_files(mailbox)) == 1
    assert not imap.saw("UID STORE") and not imap.saw("UID EXPUNGE")
    mailbox.refresh_from_db()
    assert "UID 2" in mailbox.last_error


def test_imap_literal_of_100_gb_is_refused_before_it_is_read(imap) -> None:
    imap.messages = [FakeMessage(uid=1, claimed=100, announced=100_000_000_000, flood=FLOOD)]
    mailbox = _mailbox(imap, "imap")
    error = _fetch_holding_little(mailbox)
    assert error.code == "too_large" and "100000000000" in error.message
    assert not Message.objects.exists() and not _stored_files(mailbox)


def test_pop3_message_larger_than_listed_is_refused_and_nothing_deleted(pop3) -> None:
    liar = FakeMessage(uid=2, claimed=100, flood=FLOOD)
    pop3.messages = [message(1), liar, message(3)]
    mailbox = _mailbox(pop3, "pop3", post_fetch_action="delete")
    error = _fetch_holding_little(mailbox)
    assert error.code == "too_large" and "uid-2" in error.message
    # Message 1 is stored; the connection was dropped without QUIT: nothing was deleted.
    assert list(Message.objects.values_list("uid", flat=True)) == ["uid-1"]
    assert len(_stored_files(mailbox)) == 1
    assert not pop3.saw("DELE") and not pop3.saw("QUIT")
    # The liar got out a fraction of what it tried before mailgrant hung up.
    assert pop3.flooded < FLOOD


def test_pop3_fetches_again_once_the_server_behaves(pop3) -> None:
    pop3.messages = [message(1), FakeMessage(uid=2, claimed=100, flood=FLOOD)]
    mailbox = _mailbox(pop3, "pop3", post_fetch_action="delete")
    _fetch_holding_little(mailbox)
    pop3.messages = [message(1), message(2)]
    result = mailbox_fetch(mailbox=mailbox)
    assert result.fetched == 1 and result.already_stored == 1 and result.actions == 2
    assert sorted(Message.objects.values_list("uid", flat=True)) == ["uid-1", "uid-2"]


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
    imap.messages, imap.break_off_in = [message(1)], "FETCH"
    fetched = api.post(f"/mailboxes/{too_large.pk}/fetch")
    assert fetched.status_code == 503 and fetched.json()["code"] == "protocol"
