"""A broker caller asking for more validity than the provider's tokens have (min_valid_seconds
of a day, tokens of an hour) gets the token the provider gives, refreshed at most once a
window, however many calls and however they overlap: against the real provider, which counts
its refresh grants (and revokes the whole grant if a rotated refresh token is reused)."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

import pytest
from django.db import connection

from mailgrant.common.models import AuditEvent
from mailgrant.oauth.models import Grant
from mailgrant.oauth.protocol import TokenSet
from tests.api_client import Api

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.integration]

CALLS = 20
DAY = 86400


def _age(grant: Grant, seconds: float) -> Grant:
    """The grant's token as if obtained `seconds` ago (the provider's copy is untouched)."""
    tokens = grant.tokens()
    assert tokens is not None and tokens.expires_at is not None
    older = TokenSet.from_dict(
        {
            **tokens.to_dict(),
            "obtained_at": tokens.obtained_at - seconds,
            "expires_at": tokens.expires_at - seconds,
        }
    )
    grant.token_set = older.to_dict()  # type: ignore[assignment]
    grant.expires_at = older.expiry
    grant.save(update_fields=["token_set", "expires_at"])
    return Grant.objects.get(pk=grant.pk)


def _refreshes(oidc, grant: Grant) -> int:
    return int(oidc.stats()["refresh_by_client"].get(grant.client.client_id, 0))


def _invalid_grants(oidc) -> int:
    """How often the provider refused a refresh token so far (it serves this worker's other
    tests too, so a test compares before and after)."""
    return int(oidc.stats()["token_errors"].get("invalid_grant", 0))


def _check_answers(oidc, grant: Grant, answers: list[dict], *, invalid_grants: int) -> None:
    grant.refresh_from_db()
    assert _refreshes(oidc, grant) == 1
    assert grant.refresh_count == 1
    assert AuditEvent.objects.filter(action="grant.refreshed").count() == 1
    assert AuditEvent.objects.filter(action="grant.token_issued").count() == CALLS
    tokens = grant.tokens()
    assert tokens is not None and tokens.lifetime == pytest.approx(3600, abs=2)
    # Every answer is the one refreshed token, with the expiry the provider gave it (an hour,
    # not the day asked for).
    assert {a["access_token"] for a in answers} == {tokens.access_token}
    expiries = {datetime.fromisoformat(a["expires_at"].replace("Z", "+00:00")) for a in answers}
    # (JSON carries milliseconds)
    expiry = tokens.expiry
    assert expiries == {expiry.replace(microsecond=expiry.microsecond // 1000 * 1000)}
    assert _invalid_grants(oidc) == invalid_grants


@pytest.fixture
def old_grant(mail_grant) -> Grant:
    """Validated as alice at the real provider (hour-long tokens), the token ten minutes old."""
    return _age(mail_grant, 600)


def test_sequential_calls_asking_a_day_refresh_once(api_as, oidc, old_grant) -> None:
    assert _refreshes(oidc, old_grant) == 0
    invalid_grants = _invalid_grants(oidc)
    tokens = api_as("tokens")
    answers = []
    for n in range(CALLS):
        # Both ways of asking: the query string and the JSON body.
        response = (
            tokens.post(f"/grants/{old_grant.pk}/access-token?min_valid_seconds={DAY}")
            if n % 2
            else tokens.post(f"/grants/{old_grant.pk}/access-token", {"min_valid_seconds": DAY})
        )
        assert response.status_code == 200, response.content
        answers.append(response.json())
    _check_answers(oidc, old_grant, answers, invalid_grants=invalid_grants)


def test_concurrent_calls_asking_a_day_refresh_once(api_as, oidc, old_grant) -> None:
    invalid_grants = _invalid_grants(oidc)
    tokens = api_as("tokens")
    answers: list[dict] = []
    failures: list[str] = []
    start = threading.Barrier(CALLS)

    def call() -> None:
        try:
            start.wait()
            caller = Api(None)  # a test client of its own for each thread
            caller.headers = tokens.headers
            got = caller.post(f"/grants/{old_grant.pk}/access-token", {"min_valid_seconds": DAY})
            if got.status_code == 200:
                answers.append(got.json())
            else:
                failures.append(got.content.decode())
        finally:
            connection.close()

    callers = [threading.Thread(target=call) for _ in range(CALLS)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join(120)
    assert failures == []
    assert len(answers) == CALLS
    _check_answers(oidc, old_grant, answers, invalid_grants=invalid_grants)


def test_a_window_later_it_refreshes_again(api_as, oidc, old_grant, settings) -> None:
    """The window is what bounds the refreshes, not a refusal: once the token is older than
    the window, the next such call refreshes again (once)."""
    tokens = api_as("tokens")
    path = f"/grants/{old_grant.pk}/access-token?min_valid_seconds={DAY}"
    first = tokens.post(path).json()
    _age(Grant.objects.get(pk=old_grant.pk), settings.MAILGRANT_REFRESH_MIN_INTERVAL + 1)
    second = tokens.post(path).json()
    third = tokens.post(path).json()
    assert first["access_token"] != second["access_token"] == third["access_token"]
    assert _refreshes(oidc, old_grant) == 2
    assert Grant.objects.get(pk=old_grant.pk).expires_at > datetime.now().astimezone() + timedelta(
        seconds=3000
    )
