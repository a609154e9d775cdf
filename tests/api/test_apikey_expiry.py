"""An API key may carry an expiry: until then it works as any key, afterwards it is refused as a
revoked one is (401), by the broker's fast path as by the routes."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from mailgrant.api.models import ApiKey
from mailgrant.api.services import access_token_issue_by_key, apikey_authenticate, apikey_create
from mailgrant.common.errors import Invalid
from mailgrant.common.models import AuditEvent
from tests.api_client import Api

pytestmark = pytest.mark.django_db

ACCESS_TOKEN = "canary-expiry-access-token-3a9c"


def test_a_key_works_until_it_expires_then_is_401_everywhere(
    make_client: Any, make_grant: Any
) -> None:
    grant = make_grant(make_client(name="helpdesk"), access_token=ACCESS_TOKEN)
    expires = timezone.now() + timedelta(days=1)
    key, plaintext = apikey_create(name="temp", scopes=["read", "tokens"], expires_at=expires)
    assert key.expires_at == expires and key.is_active
    api = Api(plaintext)
    assert api.get("/oauth-clients").status_code == 200
    assert access_token_issue_by_key(key=plaintext, grant_id=grant.pk, min_valid_seconds=0)
    assert api.post(f"/grants/{grant.pk}/access-token").json()["access_token"] == ACCESS_TOKEN

    ApiKey.objects.filter(pk=key.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    issued = AuditEvent.objects.filter(action="grant.token_issued").count()
    assert apikey_authenticate(key=plaintext) is None
    assert access_token_issue_by_key(key=plaintext, grant_id=grant.pk, min_valid_seconds=0) is None
    for response in (api.get("/oauth-clients"), api.post(f"/grants/{grant.pk}/access-token")):
        assert response.status_code == 401 and response.json()["code"] == "unauthorized"
        assert ACCESS_TOKEN not in response.content.decode()
    assert AuditEvent.objects.filter(action="grant.token_issued").count() == issued
    key.refresh_from_db()
    assert not key.is_active and key.is_expired and key.revoked_at is None


def test_a_key_without_expiry_never_expires() -> None:
    key, plaintext = apikey_create(name="forever", scopes=["read"])
    assert key.expires_at is None and key.is_active and not key.is_expired
    assert apikey_authenticate(key=plaintext) is not None


def test_the_expiry_is_audited_with_the_creation() -> None:
    expires = timezone.now() + timedelta(days=30)
    key, _ = apikey_create(name="audited", scopes=["read"], expires_at=expires)
    event = AuditEvent.objects.get(action="apikey.created")
    assert event.target_id == str(key.pk)
    assert f"expires {expires.isoformat(timespec='seconds')}" in event.message


def test_an_expiry_in_the_past_is_refused_and_nothing_is_made() -> None:
    with pytest.raises(Invalid) as refused:
        apikey_create(
            name="late", scopes=["read"], expires_at=timezone.now() - timedelta(minutes=1)
        )
    assert "expires_at" in refused.value.fields
    assert not ApiKey.objects.exists() and not AuditEvent.objects.exists()
