"""The migration that gives existing grants and clients the health their state means, and
every authorized grant a first refresh within a day."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("oauth", "0015_grant_refresh_claim")]
AFTER = [("oauth", "0016_health_from_state")]


def test_healths_follow_the_states(migrate) -> None:
    apps = migrate(BEFORE)
    OAuthClient = apps.get_model("oauth", "OAuthClient")  # type: ignore[attr-defined]
    Grant = apps.get_model("oauth", "Grant")  # type: ignore[attr-defined]
    on = OAuthClient.objects.create(name="on", client_id="x")
    off = OAuthClient.objects.create(name="off", client_id="y", status="disabled")
    ids = {
        state: Grant.objects.create(client=on, account=state, state=state).pk
        for state in ("authorized", "reauthorization_required", "error", "unauthorized")
    }
    ids["off"] = Grant.objects.create(client=off, account="off", state="authorized").pk
    apps = migrate(AFTER)
    OAuthClient = apps.get_model("oauth", "OAuthClient")  # type: ignore[attr-defined]
    Grant = apps.get_model("oauth", "Grant")  # type: ignore[attr-defined]
    health = {k: Grant.objects.get(pk=pk) for k, pk in ids.items()}
    assert health["reauthorization_required"].health == "needs_reauthorization"
    assert health["reauthorization_required"].health_reason == "refresh.invalid_grant"
    assert health["error"].health == "failing" and health["error"].health_hint
    assert health["off"].health == "disabled" and health["off"].next_refresh_at is None
    assert OAuthClient.objects.get(name="off").health == "disabled"
    assert OAuthClient.objects.get(name="on").health == "ok"
    authorized = health["authorized"]
    assert authorized.health == "ok"
    assert timezone.now() <= authorized.next_refresh_at + timedelta(seconds=5)
    assert authorized.next_refresh_at <= timezone.now() + timedelta(days=1)
    assert health["unauthorized"].next_refresh_at is None
