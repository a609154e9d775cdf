"""Starting a sign-in needs no account, so a flood of starts must stay bounded: a start writes
no audit row (the sign-in's completion or refusal is audited), and the started sign-ins
waiting for the provider are capped per client IP and overall (expired ones are purged
first), beyond which the start is refused with a 429 page and nothing is written."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client
from django.utils import timezone

from mailgrant.common.models import AuditEvent
from mailgrant.oauth.models import PendingAuthorization

pytestmark = pytest.mark.django_db

PER_IP, OVERALL = 4, 7


@pytest.fixture(autouse=True)
def _limits(settings):
    settings.MAILGRANT_SIGN_IN_STARTS_PER_IP = PER_IP
    settings.MAILGRANT_SIGN_IN_STARTS_MAX = OVERALL


@pytest.fixture
def sign_in_client(make_client):
    return make_client(name="Example sign-in", type="user", scope="openid email")


def _start(client_id: int, ip: str):
    return Client(REMOTE_ADDR=ip).post(f"/sso/{client_id}/start/")


def _refused_as_too_many(response) -> bool:
    return response.status_code == 429 and "Too many sign-ins" in response.content.decode()


def test_a_flood_from_one_address_writes_a_bounded_number_of_rows(sign_in_client) -> None:
    audit_before = AuditEvent.objects.count()
    answers = [_start(sign_in_client.pk, "192.0.2.1") for _ in range(30)]
    assert [a.status_code for a in answers[:PER_IP]] == [302] * PER_IP
    assert all(_refused_as_too_many(a) for a in answers[PER_IP:])
    assert PendingAuthorization.objects.count() == PER_IP
    assert AuditEvent.objects.count() == audit_before  # starts are not audited
    # Another address is not held up by that one's flood.
    assert _start(sign_in_client.pk, "192.0.2.2").status_code == 302


def test_the_overall_cap_holds_across_addresses(sign_in_client) -> None:
    answers = [_start(sign_in_client.pk, f"198.51.100.{n}") for n in range(20)]
    assert sum(a.status_code == 302 for a in answers) == OVERALL
    assert all(_refused_as_too_many(a) for a in answers[OVERALL:])
    assert PendingAuthorization.objects.count() == OVERALL


def test_expired_starts_are_purged_first(sign_in_client) -> None:
    for _ in range(PER_IP):
        assert _start(sign_in_client.pk, "203.0.113.9").status_code == 302
    assert _refused_as_too_many(_start(sign_in_client.pk, "203.0.113.9"))
    PendingAuthorization.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert _start(sign_in_client.pk, "203.0.113.9").status_code == 302
    assert PendingAuthorization.objects.count() == 1  # the expired ones are gone


def test_validate_starts_are_still_audited(admin_client, make_client) -> None:
    client = make_client()
    response = admin_client.post(f"/admin/oauth/oauthclient/{client.pk}/validate/")
    assert response.status_code == 302
    assert AuditEvent.objects.filter(action="oauth_client.validate_started").count() == 1


def test_answers_matching_no_waiting_sign_in_write_no_rows(sign_in_client) -> None:
    """A started sign-in's state, sent back again and again from a browser that did not start
    it: each is refused, and none writes an audit row (anyone can send those)."""
    started = _start(sign_in_client.pk, "192.0.2.9")
    state = parse_qs(urlsplit(started["Location"]).query)["state"][0]
    audit_before = AuditEvent.objects.count()
    stranger = Client(REMOTE_ADDR="203.0.113.5")
    for _ in range(10):
        answer = stranger.get(
            f"/oauth/callback/{sign_in_client.pk}/", {"state": state, "code": "x"}
        )
        assert answer.status_code == 403
        assert "another browser" in answer.content.decode()
    assert AuditEvent.objects.count() == audit_before
    assert PendingAuthorization.objects.get().outcome == PendingAuthorization.Outcome.PENDING
