"""Directories synced by the worker on their interval: due ones only, each claimed once, one
failing directory stopping neither the others nor the mailbox polling."""

import socket
import threading
import time
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from mailgrant.common.jobs import InlineContext
from mailgrant.common.models import AuditEvent
from mailgrant.directory.jobs import ldap_directories_sync_due, ldap_directory_claim
from mailgrant.directory.models import DirectoryAccount, LdapDirectory
from mailgrant.worker.loop import run

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_tick_syncs_due_directories_and_isolates_a_failing_one(make_directory) -> None:
    down = make_directory(name="a-down", server_uri=f"ldap://127.0.0.1:{_closed_port()}")
    good = make_directory(name="b-good")
    make_directory(name="c-on-demand", sync_interval=0)
    make_directory(name="d-disabled", status=LdapDirectory.Status.DISABLED)
    results = {r.directory: r for r in ldap_directories_sync_due()}
    assert set(results) == {"a-down", "b-good"}
    assert not results["a-down"].ok and "Cannot reach" in results["a-down"].error
    assert results["b-good"].ok and results["b-good"].created == 3
    assert DirectoryAccount.objects.filter(directory=good).count() == 3
    assert AuditEvent.objects.get(action="ldap_directory.synced").actor == "poller"
    down.refresh_from_db()
    assert "Cannot reach" in down.last_error and down.last_sync_at is not None

    # nothing is due again at once, the failed one included (no hammering: it backs off)
    assert ldap_directories_sync_due() == []
    later = InlineContext(worker="w", now=timezone.now() + timedelta(minutes=61))
    assert ldap_directories_sync_due(later) == 2
    assert {r.directory for r in later.results} == {"a-down", "b-good"}


def test_a_claimed_directory_is_not_synced_twice(make_directory) -> None:
    directory = make_directory()
    stale = LdapDirectory.objects.get(pk=directory.pk)
    assert ldap_directories_sync_due(InlineContext(worker="w", now=timezone.now(), capacity=0)) == 0
    assert ldap_directory_claim(directory=directory, now=timezone.now())
    assert not ldap_directory_claim(
        directory=stale, now=timezone.now()
    )  # another worker with the old view loses


def test_poll_once_reports_directories(make_directory, capsys) -> None:
    make_directory(name="people")
    call_command("poll", "--once")
    assert "LDAP directory people: 3 created, 0 updated, 0 disabled, 0 conflicts" in (
        capsys.readouterr().out
    )


@pytest.mark.django_db(transaction=True)
def test_the_worker_loop_syncs_even_when_mailbox_polling_breaks(make_directory) -> None:
    directory = make_directory(name="people")

    def broken_poll() -> list:
        raise RuntimeError("the mailbox side fails")

    stop = threading.Event()
    jobs = (broken_poll, ldap_directories_sync_due)
    loop = threading.Thread(target=run, args=(stop,), kwargs={"tick": 0.2, "jobs": jobs})
    loop.start()
    try:
        deadline = time.monotonic() + 30
        while (
            time.monotonic() < deadline
            and not DirectoryAccount.objects.filter(directory=directory).exists()
        ):
            time.sleep(0.1)
    finally:
        stop.set()
        loop.join(timeout=30)
    assert DirectoryAccount.objects.filter(directory=directory).count() == 3
