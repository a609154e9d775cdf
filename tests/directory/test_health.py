"""A directory's health through its syncs on real slapd: a stopped server is failing with a
backoff that grows (never hammered), the other directories keep syncing, and it recovers by
itself once the server is back; a refused bind waits for its interval; disabled is a health."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from mailgrant.common.jobs import InlineContext
from mailgrant.common.models import Event
from mailgrant.directory.jobs import ldap_directories_sync_due
from mailgrant.directory.models import LdapDirectory
from mailgrant.directory.services.directories import ldap_directory_save
from tests.servers import slapd as slapd_peer

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


@pytest.fixture
def own_slapd(slapd: Any) -> Iterator[slapd_peer.SlapdServer]:
    """A private slapd this test may stop and start (the session's stays up for the others)."""
    with slapd_peer.SlapdServer() as server:
        yield server


def _halt(server: slapd_peer.SlapdServer) -> None:
    server.process.terminate()
    server.process.wait(timeout=10)


def _resume(server: slapd_peer.SlapdServer) -> None:
    uris = f"{server.uri}/ {server.ldaps_uri}/"
    server.process = subprocess.Popen(
        [slapd_peer.SLAPD, "-f", str(server.config), "-h", uris, "-d", "none"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    slapd_peer._wait_for_port(server.port)


def _round(now: Any) -> dict[str, Any]:
    ctx = InlineContext(worker="test-worker", now=now)
    assert ldap_directories_sync_due(ctx) == len(ctx.results)
    return {r.directory: r for r in ctx.results}


def test_a_stopped_directory_backs_off_and_recovers_by_itself(make_directory, own_slapd) -> None:
    down = make_directory(name="a-stopped", server_uri=own_slapd.uri)
    good = make_directory(name="b-good")
    assert {n: r.ok for n, r in _round(timezone.now()).items()} == {
        "a-stopped": True,
        "b-good": True,
    }
    _halt(own_slapd)
    LdapDirectory.objects.update(next_sync_at=timezone.now())  # both due again
    results = _round(timezone.now())
    assert not results["a-stopped"].ok and results["b-good"].ok  # the other keeps syncing

    gaps = []
    for failures in range(1, 4):
        down.refresh_from_db()
        assert down.health == "failing" and down.health_reason == "ldap.unreachable"
        assert down.consecutive_failures == failures
        assert "tries again with backoff" in down.health_hint
        assert down.last_error.startswith("Cannot reach")
        gaps.append((down.next_sync_at - down.last_sync_at).total_seconds())
        assert set(_round(down.next_sync_at)) == {"a-stopped"}  # only when it is due
    # Equal jitter from a minute: each wait is in [base * 2^(n-1) / 2, base * 2^(n-1)].
    assert 30 <= gaps[0] <= 60 <= gaps[1] <= 120 <= gaps[2] <= 240
    assert gaps[0] < gaps[1] < gaps[2]

    _resume(own_slapd)
    down.refresh_from_db()
    assert _round(down.next_sync_at)["a-stopped"].ok
    down.refresh_from_db()
    assert (down.health, down.health_reason, down.consecutive_failures) == ("ok", "", 0)
    assert down.last_success_at == down.last_sync_at
    assert down.next_sync_at - down.last_sync_at == timedelta(minutes=down.sync_interval)
    good.refresh_from_db()
    assert good.health == "ok"
    # one event when it started failing, one when it recovered: not one per failed sync
    events = Event.objects.filter(subject_type="directory.ldapdirectory")
    assert list(events.values_list("type", "subject_id")) == [
        ("directory.sync_failed", str(down.pk)),
        ("directory.recovered", str(down.pk)),
    ]


def test_a_refused_bind_is_explained_and_waits_for_its_interval(make_directory) -> None:
    directory = make_directory(bind_password="not-the-password")
    results = _round(timezone.now())
    assert not results[directory.name].ok
    directory.refresh_from_db()
    assert (directory.health, directory.health_reason) == ("failing", "ldap.bind_refused")
    assert "bind DN and its password" in directory.health_hint
    assert directory.next_sync_at - directory.last_sync_at == timedelta(minutes=60)
    assert "not-the-password" not in directory.last_error + directory.health_hint

    # the password given again: a fresh start, synced at once
    ldap_directory_save(directory=directory, bind_password=slapd_peer.BIND_PASSWORD)
    directory.refresh_from_db()
    assert (directory.health, directory.consecutive_failures, directory.next_sync_at) == (
        "ok",
        0,
        None,
    )
    assert _round(timezone.now())[directory.name].ok


def test_a_disabled_directory_is_disabled_and_not_synced(make_directory) -> None:
    directory = make_directory(status=LdapDirectory.Status.DISABLED)
    directory.refresh_from_db()
    assert (directory.health, directory.health_reason) == ("disabled", "directory.disabled")
    assert _round(timezone.now()) == {}
    directory.status = LdapDirectory.Status.ENABLED
    ldap_directory_save(directory=directory)
    directory.refresh_from_db()
    assert directory.health == "ok"
    assert _round(timezone.now())[directory.name].ok
