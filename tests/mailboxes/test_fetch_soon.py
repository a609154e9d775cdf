""" "Fetch now" through the worker: the mailbox becomes due at once, the act is audited, and the
workers are woken once the transaction commits; an outgoing or disabled mailbox is refused
with a clear error and nothing changes."""

from datetime import timedelta

import pytest
from django.utils import timezone

from mailgrant.common.audit import CLI
from mailgrant.common.errors import NeedsAdmin
from mailgrant.common.models import AuditEvent
from mailgrant.common.wakeup import wakeup_subscribe
from mailgrant.mailboxes.models import Mailbox
from mailgrant.mailboxes.services.mailboxes import mailbox_fetch_soon, mailbox_save

pytestmark = pytest.mark.django_db


def _mailbox(**fields) -> Mailbox:
    fields = {
        "name": "soon",
        "protocol": "imap",
        "host": "127.0.0.1",
        "port": 143,
        "security": "none",
        "username": "pat@example.test",
        "auth_method": "password",
        **fields,
    }
    return mailbox_save(mailbox=Mailbox(**fields), password="pw")


def test_fetch_soon_makes_it_due_audits_and_wakes_after_commit(
    django_capture_on_commit_callbacks,
) -> None:
    mailbox = _mailbox()
    later = timezone.now() + timedelta(hours=1)
    Mailbox.objects.filter(pk=mailbox.pk).update(next_poll_at=later)
    woken: list[str] = []
    unsubscribe = wakeup_subscribe(woken.append)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            mailbox_fetch_soon(mailbox=mailbox, actor=CLI)
            assert woken == []  # not before the commit
    finally:
        unsubscribe()
    assert woken == ["mailboxes"]
    mailbox.refresh_from_db()
    assert mailbox.next_poll_at <= timezone.now()
    event = AuditEvent.objects.get(action="mailbox.fetch_requested")
    assert event.actor == "cli" and event.target_id == str(mailbox.pk)


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        (
            {"protocol": "smtp", "direction": "outgoing", "port": 587},
            "Only incoming mailboxes fetch.",
        ),
        ({"enabled": False}, "The mailbox is disabled: enable it first."),
    ],
)
def test_fetch_soon_refuses_what_does_not_fetch(fields, problem) -> None:
    mailbox = _mailbox(**fields)
    before = Mailbox.objects.get(pk=mailbox.pk).next_poll_at
    with pytest.raises(NeedsAdmin, match=problem):
        mailbox_fetch_soon(mailbox=mailbox)
    assert Mailbox.objects.get(pk=mailbox.pk).next_poll_at == before
    assert not AuditEvent.objects.filter(action="mailbox.fetch_requested").exists()


def test_a_new_incoming_mailbox_wakes_the_workers(django_capture_on_commit_callbacks) -> None:
    woken: list[str] = []
    unsubscribe = wakeup_subscribe(woken.append)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            _mailbox(name="new-one")
        with django_capture_on_commit_callbacks(execute=True):
            _mailbox(
                name="out", protocol="smtp", direction="outgoing", port=587
            )  # outgoing: nothing to fetch
    finally:
        unsubscribe()
    assert woken == ["mailboxes"]
