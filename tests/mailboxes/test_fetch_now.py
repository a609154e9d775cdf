"""A fetch someone waits on (Fetch now, the API, the command line) takes the mailbox's claim as a
worker does: it holds it while it runs and gives it back after, and it is refused (409, nothing
touched) while a worker's fetch of that mailbox runs; a dead worker's run-out claim is no bar."""

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from mailgrant.common.audit import CLI
from mailgrant.common.errors import Conflict
from mailgrant.mailboxes.models import Mailbox
from mailgrant.mailboxes.services.fetch_now import mailbox_fetch_now
from tests.mailboxes.conftest import message
from tests.servers.dovecot import PASSWORD_USERS

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

USER, PASSWORD = next(iter(PASSWORD_USERS.items()))


def _claimed_by_a_worker(mailbox: Mailbox, *, seconds: float) -> None:
    Mailbox.objects.filter(pk=mailbox.pk).update(
        claimed_by="worker:host:1:start", claimed_until=timezone.now() + timedelta(seconds=seconds)
    )


def test_the_claim_is_held_while_it_fetches_and_given_back(make_mailbox: Any, dovecot: Any) -> None:
    mailbox = make_mailbox(username=USER, auth_method="password", password=PASSWORD)
    dovecot.deliver(USER, message(1, extra="fetch-now"), message(2, extra="fetch-now"))
    seen: list[tuple[str, Any]] = []

    def progress(count: int, size: int) -> None:
        seen.append(Mailbox.objects.values_list("claimed_by", "claimed_until").get(pk=mailbox.pk))

    result = mailbox_fetch_now(mailbox=mailbox, actor=CLI, progress=progress)

    assert result.fetched >= 2
    assert seen and all(by.startswith(f"{CLI.name}:") and until for by, until in seen)
    mailbox.refresh_from_db()
    assert (mailbox.claimed_by, mailbox.claimed_until) == ("", None)


def test_refused_while_a_worker_fetches_it(make_mailbox: Any, dovecot: Any) -> None:
    mailbox = make_mailbox(username=USER, auth_method="password", password=PASSWORD)
    _claimed_by_a_worker(mailbox, seconds=60)

    with pytest.raises(Conflict) as refused:
        mailbox_fetch_now(mailbox=mailbox, actor=CLI)

    assert "worker:host:1:start" in refused.value.message
    mailbox.refresh_from_db()
    assert mailbox.last_fetch_at is None  # nothing was fetched, nothing recorded
    assert mailbox.claimed_by == "worker:host:1:start"  # the worker's claim is left alone


def test_a_dead_workers_run_out_claim_is_no_bar(make_mailbox: Any, dovecot: Any) -> None:
    mailbox = make_mailbox(username=USER, auth_method="password", password=PASSWORD)
    _claimed_by_a_worker(mailbox, seconds=-5)

    mailbox_fetch_now(mailbox=mailbox, actor=CLI)

    mailbox.refresh_from_db()
    assert mailbox.last_fetch_at is not None and mailbox.claimed_by == ""


def test_the_api_answers_409(make_mailbox: Any, dovecot: Any, api: Any) -> None:
    mailbox = make_mailbox(username=USER, auth_method="password", password=PASSWORD)
    _claimed_by_a_worker(mailbox, seconds=60)

    answer = api.post(f"/mailboxes/{mailbox.pk}/fetch")

    assert answer.status_code == 409, answer.content
    assert answer.json()["code"] == "fetch_in_progress"
