"""The worker's refresh job against the real provider (oidc-provider, rotating refresh tokens:
a rotated one used twice revokes the whole grant, so a second refresh of a due would show in
`grants_revoked`): keep-alive and refresh ahead seen at the provider, a broker caller of a
grant in use never refreshing, a revoked grant stopped and re-authorized, and several
processes sharing the due grants."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection
from django.utils import timezone

from mailgrant.common.audit import Actor
from mailgrant.common.jobs import InlineContext
from mailgrant.common.models import AuditEvent
from mailgrant.oauth.broker import grant_use_forget
from mailgrant.oauth.jobs import grants_refresh_due
from mailgrant.oauth.models import Grant, OAuthClient
from mailgrant.oauth.services.tokens import access_token_for, access_token_issue
from tests.oauth.test_refresh_concurrency import _env, _finish, _worker
from tests.servers.oidc import ACCOUNTS

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _uses_forgotten():
    grant_use_forget()
    yield
    grant_use_forget()


def _refreshes(oidc, client_id: str) -> int:
    return int(oidc.stats()["refresh_by_client"].get(client_id, 0))


class JobLoop:
    """The worker's refresh job run every `interval` seconds in a thread, as a worker would."""

    def __init__(self, interval: float = 0.25) -> None:
        self.interval = interval
        self.stop = threading.Event()
        self.outcomes: list[object] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            while not self.stop.is_set():
                ctx = InlineContext(worker="loop", now=timezone.now())
                grants_refresh_due(ctx)
                self.outcomes.extend(ctx.results)
                self.stop.wait(self.interval)
        finally:
            connection.close()

    def __enter__(self) -> JobLoop:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(30)


def test_idle_grant_is_kept_alive(oidc, oidc_client, validate_headless, settings) -> None:
    settings.MAILGRANT_KEEPALIVE = 3
    oidc.reset_stats()  # grants_revoked counts from here (the provider is the session's)
    client = oidc_client()
    grant = validate_headless(client).grant
    first = grant.tokens().refresh_token
    assert grant.next_refresh_at is not None
    before = _refreshes(oidc, client.client_id)
    with JobLoop():
        deadline = time.monotonic() + 60
        while _refreshes(oidc, client.client_id) < before + 2 and time.monotonic() < deadline:
            time.sleep(0.2)
    grant.refresh_from_db()
    assert _refreshes(oidc, client.client_id) >= before + 2
    assert grant.health == "ok" and grant.tokens().refresh_token != first
    assert oidc.stats()["grants_revoked"] == 0
    actors = set(
        AuditEvent.objects.filter(action="grant.refreshed", target_id=str(grant.pk)).values_list(
            "actor", flat=True
        )
    )
    assert actors == {"worker:loop"}


def test_a_grant_in_use_is_refreshed_ahead_and_its_callers_never_wait(
    oidc, oidc_client, validate_headless
) -> None:
    """Tokens of 20 s used every half second for two lifetimes: every refresh is the worker's
    (none by a caller), about one per lifetime, and the token handed out is live."""
    ttl = 20
    oidc.set_access_token_ttl(ttl)
    oidc.reset_stats()  # grants_revoked counts from here (the provider is the session's)
    try:
        client = oidc_client()
        grant = validate_headless(client).grant
        before = _refreshes(oidc, client.client_id)
        caller = Actor(name="apikey:poller")
        started = time.monotonic()
        handed: list[str] = []
        with JobLoop():
            while time.monotonic() - started < 2 * ttl:
                handed.append(
                    access_token_issue(
                        grant_id=grant.pk, min_valid_seconds=60, actor=caller
                    ).access_token
                )
                time.sleep(0.5)
        elapsed = time.monotonic() - started
        refreshes = _refreshes(oidc, client.client_id) - before
        lifetimes = elapsed / ttl
        # Refreshed ahead, every lifetime minus 4 s (oauth.schedule): about one per lifetime.
        assert lifetimes - 1 <= refreshes <= lifetimes * 1.3 + 1, (refreshes, lifetimes)
        assert refreshes < len(handed) / 10  # never one per use
        rows = AuditEvent.objects.filter(action="grant.refreshed", target_id=str(grant.pk))
        assert set(rows.values_list("actor", flat=True)) == {"worker:loop"}
        assert rows.count() == refreshes
        secret = OAuthClient.objects.get(pk=client.pk).client_secret.reveal()
        info = oidc.introspect(handed[-1], client_id=client.client_id, client_secret=secret)
        assert info["active"] is True
        assert oidc.stats()["grants_revoked"] == 0
    finally:
        oidc.set_access_token_ttl(3600)


def test_revoked_at_the_provider_stops_until_reauthorized(
    oidc, oidc_client, validate_headless
) -> None:
    client = oidc_client()
    grant = validate_headless(client).grant
    secret = OAuthClient.objects.get(pk=client.pk).client_secret.reveal()
    revoked = oidc.http.post(
        "/token/revocation",
        data={"token": grant.tokens().refresh_token, "token_type_hint": "refresh_token"},
        auth=(client.client_id, secret),
    )
    assert revoked.status_code == 200
    Grant.objects.filter(pk=grant.pk).update(next_refresh_at=timezone.now())
    before = oidc.stats()
    ctx = InlineContext(worker="w", now=timezone.now())
    grants_refresh_due(ctx)
    assert ctx.results == ["reauthorization_required"]
    grant.refresh_from_db()
    assert grant.health == "needs_reauthorization"
    assert grant.health_reason == "refresh.invalid_grant"
    assert "Validate the grant again" in grant.health_hint
    assert grant.next_refresh_at is None
    after = oidc.stats()
    assert after["token_errors"].get("invalid_grant", 0) == (
        before["token_errors"].get("invalid_grant", 0) + 1
    )
    # No further attempt reaches the provider: not the worker's, not a caller's.
    ctx = InlineContext(worker="w", now=timezone.now())
    grants_refresh_due(ctx)
    assert ctx.results == []
    with pytest.raises(Exception, match="validated again"):
        access_token_for(grant=Grant.objects.get(pk=grant.pk))
    assert oidc.stats()["token_errors"] == after["token_errors"]
    assert oidc.stats()["token"] == after["token"]
    # Validated again: ok, and on schedule.
    grant = validate_headless(client).grant
    grant.refresh_from_db()
    assert grant.health == "ok" and grant.health_reason == "" and grant.next_refresh_at
    Grant.objects.filter(pk=grant.pk).update(next_refresh_at=timezone.now())
    ctx = InlineContext(worker="w", now=timezone.now())
    grants_refresh_due(ctx)
    assert ctx.results == ["ok"]
    assert Grant.objects.get(pk=grant.pk).health == "ok"


def test_workers_in_three_processes_refresh_each_due_grant_once(
    oidc, tmp_path, database_url
) -> None:
    import subprocess
    import sys
    from pathlib import Path

    env = _env(tmp_path, database_url)
    mailgrant = str(Path(sys.executable).with_name("mailgrant"))
    migrated = subprocess.run(
        [mailgrant, "migrate", "--noinput"], env=env, capture_output=True, text=True, timeout=120
    )
    assert migrated.returncode == 0, migrated.stderr
    alice = "alice@example.test"
    count = 32
    made = _finish(
        _worker(env, "grants", oidc.issuer, alice, ACCOUNTS[alice]["password"], str(count))
    )
    assert made["grants"] == count
    before = oidc.stats()
    start = time.time() + 3  # every interpreter is up and waiting by then
    workers = [_worker(env, "job", "3", str(start)) for _ in range(3)]
    outcomes = [o for w in workers for o in _finish(w)]
    assert outcomes == ["ok"] * count, outcomes
    after = oidc.stats()
    refreshed = after["refresh_by_client"].get(made["client_id"], 0) - before[
        "refresh_by_client"
    ].get(made["client_id"], 0)
    assert refreshed == count
    assert after["grants_revoked"] == before["grants_revoked"]
    assert after["token_errors"] == before["token_errors"]
