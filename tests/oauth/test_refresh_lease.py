"""A refresh holds no transaction open while the provider answers: on SQLite (whose write
lock covers the whole database) a token endpoint that takes 15 s stalls no other writer."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from mailgrant.common.errors import ServiceError
from mailgrant.mailboxes.models import Mailbox
from mailgrant.mailboxes.services.mailboxes import mailbox_create
from mailgrant.oauth.models import Grant
from mailgrant.oauth.services.tokens import grant_refresh
from tests.servers.fakes import Canned

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_slow_token_endpoint_blocks_no_unrelated_write(make_client, make_grant, fake_provider):
    assert connection.vendor == "sqlite"
    released = threading.Event()
    fake_provider.answer(
        "/token",
        Canned(body={"access_token": "at-new", "expires_in": 3600}, release=released),
    )
    client = make_client(token_url=f"{fake_provider.url}/token")
    grant = make_grant(client)
    outcome: dict[str, object] = {}

    def refresh() -> None:
        try:
            outcome["grant"] = grant_refresh(grant=Grant.objects.get(pk=grant.pk))
        except ServiceError as exc:  # pragma: no cover - reported by the assertion below
            outcome["error"] = exc
        finally:
            connection.close()

    refreshing = threading.Thread(target=refresh)
    refreshing.start()
    try:
        while not fake_provider.requests_to("/token"):  # the provider is being asked
            refreshing.join(0.01)
        # Meanwhile: an administrator's save (a write of another app, with its audit row).
        saved = mailbox_create(
            values={"name": "while-refreshing", "host": "imap.example.test",
                    "username": "u@example.test", "auth_method": "password"},
            password="pw",
        )  # fmt: skip
        assert refreshing.is_alive() and not released.is_set()  # done before the answer came
        assert Grant.objects.get(pk=grant.pk).refreshing_until is not None  # the lease is held
    finally:
        released.set()
        refreshing.join(30)
    assert Mailbox.objects.filter(pk=saved.pk).exists()
    assert "error" not in outcome, outcome
    refreshed = Grant.objects.get(pk=grant.pk)
    assert refreshed.tokens().access_token == "at-new" and refreshed.refresh_count == 1
    assert refreshed.refreshing_until is None  # the lease ended with the write


def test_a_waiting_caller_finds_the_fresh_token(make_client, make_grant, fake_provider) -> None:
    """Two callers of a grant near expiry: one refresh (the waiter reads what it wrote)."""
    released = threading.Event()
    fake_provider.answer(
        "/token",
        Canned(body={"access_token": "at-once", "expires_in": 3600}, release=released),
    )
    client = make_client(token_url=f"{fake_provider.url}/token")
    grant = make_grant(client, expires_in=30)
    results: list[str] = []

    def call() -> None:
        try:
            refreshed = grant_refresh(grant=Grant.objects.get(pk=grant.pk), force=False)
            results.append(refreshed.tokens().access_token)
        finally:
            connection.close()

    callers = [threading.Thread(target=call) for _ in range(2)]
    for caller in callers:
        caller.start()
    while not fake_provider.requests_to("/token"):
        callers[0].join(0.01)
    released.set()
    for caller in callers:
        caller.join(30)
    assert results == ["at-once", "at-once"]
    assert len(fake_provider.requests_to("/token")) == 1
    assert Grant.objects.get(pk=grant.pk).refresh_count == 1
