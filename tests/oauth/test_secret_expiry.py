"""A client secret's expiry: set in the admin and the API (the command line's in
tests/cli/test_client_secret_expiry.py), a warning 30 days before and failing once passed (kept
current by the worker's job), ok again with a new one; and never the secret itself there."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from mailgrant.common.jobs import InlineContext
from mailgrant.oauth.jobs import clients_check_secret_expiry
from mailgrant.oauth.models import OAuthClient
from tests.oauth.client_form import SECRET, client_form

pytestmark = pytest.mark.django_db


def _check(now=None) -> int:
    return clients_check_secret_expiry(InlineContext(worker="w", now=now or timezone.now()))


def test_the_job_warns_then_fails_then_a_new_secret_clears(make_client) -> None:
    from mailgrant.oauth.services.clients import oauth_client_save

    client = make_client(provider="azure")
    soon = timezone.now() + timedelta(days=40)
    OAuthClient.objects.filter(pk=client.pk).update(secret_expires_at=soon)
    assert _check() == 0  # 40 days: nothing to say yet
    assert OAuthClient.objects.get(pk=client.pk).health == "ok"

    assert _check(soon - timedelta(days=12, hours=1)) == 1
    client.refresh_from_db()
    assert client.health == "warning" and client.health_reason == "client.secret_expiring"
    assert "13 days" in client.health_hint and "Certificates & secrets" in client.health_hint
    assert _check(soon - timedelta(days=12, hours=1)) == 0  # one write, then none
    assert _check(soon - timedelta(days=1)) == 1  # the days count down
    assert "1 day " in OAuthClient.objects.get(pk=client.pk).health_hint

    assert _check(soon + timedelta(minutes=1)) == 1
    client.refresh_from_db()
    assert client.health == "failing" and client.health_reason == "client.secret_expired"
    assert f"{soon:%Y-%m-%d}" in client.health_hint

    client.secret_expires_at = timezone.now() + timedelta(days=700)
    oauth_client_save(client=client, client_secret="a-new-secret")
    assert OAuthClient.objects.get(pk=client.pk).health == "ok"
    assert _check() == 0


def test_the_admin_form_sets_it_and_shows_the_health(admin_client) -> None:
    soon = timezone.localtime() + timedelta(days=10)
    form = client_form(
        secret_expires_at_0=f"{soon:%Y-%m-%d}", secret_expires_at_1=f"{soon:%H:%M:%S}"
    )
    response = admin_client.post(reverse("admin:oauth_oauthclient_add"), form, follow=True)
    assert response.status_code == 200
    client = OAuthClient.objects.get()
    assert client.secret_expires_at is not None
    assert abs((client.secret_expires_at - soon).total_seconds()) < 1
    assert client.health == "warning" and client.health_reason == "client.secret_expiring"
    html = admin_client.get(
        reverse("admin:oauth_oauthclient_change", args=[client.pk])
    ).content.decode()
    assert "client.secret_expiring" in html and "Google Cloud console" in html
    assert SECRET not in html
    listed = admin_client.get(reverse("admin:oauth_oauthclient_changelist")).content.decode()
    assert "Warning" in listed and SECRET not in listed


def test_the_api_creates_updates_and_reads_it(api) -> None:
    secret = "canary-api-client-secret-91d2"
    expires = (timezone.now() + timedelta(days=5)).replace(microsecond=0)
    created = api.post(
        "/oauth-clients",
        {
            "name": "Azure support",
            "provider": "azure",
            "client_id": "app",
            "client_secret": secret,
            "secret_expires_at": expires.isoformat(),
        },
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert secret not in created.content.decode()
    assert body["secret_expires_at"].startswith(f"{expires:%Y-%m-%dT%H:%M:%S}")
    client = OAuthClient.objects.get(pk=body["id"])
    assert client.health == "warning" and "5 days" in client.health_hint
    patched = api.patch(f"/oauth-clients/{client.pk}", {"secret_expires_at": None})
    assert patched.status_code == 200 and patched.json()["secret_expires_at"] is None
    assert OAuthClient.objects.get(pk=client.pk).health == "ok"
    past = (timezone.now() - timedelta(days=1)).isoformat()
    api.patch(f"/oauth-clients/{client.pk}", {"secret_expires_at": past})
    read = api.get(f"/oauth-clients/{client.pk}")
    assert read.json()["secret_expires_at"] is not None and secret not in read.content.decode()
    assert OAuthClient.objects.get(pk=client.pk).health_reason == "client.secret_expired"
    bad = api.patch(f"/oauth-clients/{client.pk}", {"secret_expires_at": "next tuesday"})
    assert bad.status_code in (400, 422)
    assert OAuthClient.objects.get(pk=client.pk).health_reason == "client.secret_expired"
