"""The refresh's hot path reads and writes through the driver (common.sql): what it reads is
what the ORM reads, and what it writes is what save() would."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from mailgrant.common.models import AuditEvent
from mailgrant.oauth.models import Grant
from mailgrant.oauth.selectors import grant_get, grant_get_for_refresh
from mailgrant.oauth.services.tokens import grant_refresh

pytestmark = pytest.mark.django_db


def test_the_refresh_read_is_the_orms(make_client, make_grant) -> None:
    client = make_client(proxy="http://user:pw@proxy.example.test:3128", verify_ssl=False)
    client.metadata = {"token_endpoint_auth_methods": ["client_secret_post"], "issuer": "x"}
    client.secret_expires_at = timezone.now() + timedelta(days=3)
    client.save()
    grant = make_grant(client)
    Grant.objects.filter(pk=grant.pk).update(
        next_refresh_at=timezone.now(), health="warning", consecutive_failures=2
    )
    orm, fast = grant_get(grant_id=grant.pk), grant_get_for_refresh(grant_id=grant.pk)
    for field in Grant._meta.concrete_fields:
        assert getattr(fast, field.attname) == getattr(orm, field.attname), field.name
    for field in type(orm.client)._meta.concrete_fields:
        assert getattr(fast.client, field.attname) == getattr(orm.client, field.attname), field
    assert fast.tokens() == orm.tokens() and not fast._state.adding
    with pytest.raises(Grant.DoesNotExist):
        grant_get_for_refresh(grant_id=grant.pk + 1000)


def test_a_refresh_writes_its_fields_and_its_audit_row(make_client, make_grant, fake_provider):
    fake_provider.answer("/token", {"access_token": "at-new", "expires_in": 3600})
    grant = make_grant(make_client(token_url=f"{fake_provider.url}/token"))
    used = timezone.now() - timedelta(minutes=5)
    stale = Grant.objects.select_related("client").get(pk=grant.pk)
    Grant.objects.filter(pk=grant.pk).update(last_used_at=used)  # a caller used it
    grant_refresh(grant=stale)
    after = Grant.objects.get(pk=grant.pk)
    assert after.tokens().access_token == "at-new"
    assert after.tokens().refresh_token == "rt-initial"  # not rotated: kept
    assert after.refresh_count == 1 and after.refreshing_until is None
    assert after.last_used_at == used and after.updated_at > grant.updated_at
    assert after.token_set.ciphertext and "at-new" not in after.token_set.ciphertext
    row = AuditEvent.objects.get(action="grant.refreshed")
    assert (row.target_id, row.target_repr, row.outcome) == (str(grant.pk), str(after), "ok")
