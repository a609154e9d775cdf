"""Polling mailboxes: due ones are fetched, a broken one does not stop the others, intervals
hold, a mailbox claimed by one worker is not taken by another until its lease runs out, the
claim ends with the fetch, and a round takes no more than the pool has room for."""

import socket
from datetime import timedelta

import pytest
from django.utils import timezone

from mailgrant.common.jobs import InlineContext
from mailgrant.mailboxes.jobs import PollRound, mailboxes_leases_renew, mailboxes_poll_due
from mailgrant.mailboxes.models import Mailbox, Message
from tests.mailboxes.conftest import message
from tests.servers.dovecot import PASSWORD_USERS

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _poll(worker: str = "w1", **fields) -> InlineContext:
    ctx = InlineContext(worker=worker, now=timezone.now(), **fields)
    mailboxes_poll_due(ctx)
    return ctx


def test_one_broken_mailbox_does_not_stop_the_others(dovecot, make_mailbox) -> None:
    user, password = next(iter(PASSWORD_USERS.items()))
    broken = make_mailbox(
        name="a-broken",
        auth_method="password",
        username=user,
        password=password,
        port=_closed_port(),
    )
    good = make_mailbox(name="b-good", auth_method="password", username=user, password=password)
    make_mailbox(
        name="c-disabled", auth_method="password", username=user, password=password, enabled=False
    )
    dovecot.deliver(user, message(7, extra="poller"))
    outcomes = {o.mailbox: o for o in _poll().results}
    assert set(outcomes) == {"a-broken", "b-good"}
    assert "refused the connection" in outcomes["a-broken"].error
    assert outcomes["b-good"].error == "" and outcomes["b-good"].fetched >= 1
    assert Message.objects.filter(mailbox=good, message_id="<m7-poller@example.test>").exists()
    broken.refresh_from_db()
    assert "refused the connection" in broken.last_error
    assert broken.next_poll_at > timezone.now() + timedelta(seconds=200)
    assert _poll().results == []  # nothing is due again before its interval
    # Every claim ended with its fetch, failed or not.
    assert not Mailbox.objects.exclude(claimed_by="").exists()


def test_a_claimed_mailbox_is_not_taken_by_another_worker_until_its_lease_ends(
    dovecot, make_mailbox
) -> None:
    user, password = next(iter(PASSWORD_USERS.items()))
    mailbox = make_mailbox(auth_method="password", username=user, password=password)
    now = timezone.now()
    Mailbox.objects.filter(pk=mailbox.pk).update(
        claimed_by="w-dead", claimed_until=now + timedelta(seconds=30)
    )
    assert _poll("w2").results == []  # held by a worker whose lease still runs
    assert mailboxes_leases_renew(worker="w2", now=now) == 0  # renews only its own
    Mailbox.objects.filter(pk=mailbox.pk).update(claimed_until=now - timedelta(seconds=1))
    taken = _poll("w2").results
    assert [o.mailbox for o in taken] == [mailbox.name]  # the dead worker's lease ran out
    mailbox.refresh_from_db()
    assert mailbox.claimed_by == "" and mailbox.claimed_until is None


def test_a_round_claims_no_more_than_the_free_slots_oldest_due_first(dovecot, make_mailbox) -> None:
    user, password = next(iter(PASSWORD_USERS.items()))
    now = timezone.now()
    boxes = [
        make_mailbox(name=f"box-{i}", auth_method="password", username=user, password=password)
        for i in range(3)
    ]
    for i, box in enumerate(boxes):  # box-2 has waited longest
        Mailbox.objects.filter(pk=box.pk).update(next_poll_at=now - timedelta(seconds=10 * i))
    ctx = InlineContext(worker="w1", now=now, capacity=2)
    round_ = mailboxes_poll_due(ctx)
    assert isinstance(round_, PollRound) and round_.claimed == 2
    assert [o.mailbox for o in ctx.results] == ["box-2", "box-1"]
    assert round_.lag_max == pytest.approx(20, abs=1)  # how late the latest-taken was
