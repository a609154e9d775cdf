"""A request that sends `Authorization: Bearer` with no valid key behind it gets the documented
401, on every method: the key it names is who calls, so it is not taken for a browser session
(whose CSRF check would answer 403 on unsafe methods)."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from mailgrant.api.models import ApiKey
from mailgrant.api.services import apikey_create, apikey_revoke
from mailgrant.oauth.models import OAuthClient

pytestmark = pytest.mark.django_db

CALLS = [
    ("get", "/api/v1/oauth-clients"),
    ("post", "/api/v1/oauth-clients"),
    ("patch", "/api/v1/oauth-clients/1"),
    ("delete", "/api/v1/oauth-clients/1"),
    ("post", "/api/v1/grants/1/access-token"),
    ("post", "/api/v1/mailboxes/1/send"),
]


def revoked_key() -> str:
    key, plaintext = apikey_create(name="gone", scopes=["read", "write", "tokens"])
    apikey_revoke(key=key)
    return plaintext


@pytest.mark.parametrize(("method", "path"), CALLS)
@pytest.mark.parametrize("key", ["mgk_made-up", "not-even-ours", "", "revoked"])
def test_a_bearer_header_without_a_valid_key_is_401(method: str, path: str, key: str) -> None:
    token = revoked_key() if key == "revoked" else key
    browser = Client(enforce_csrf_checks=True)
    response = getattr(browser, method)(
        path, data={}, content_type="application/json", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 401, response.content
    assert response.json()["code"] == "unauthorized"
    assert response["Cache-Control"] == "no-store"


def test_a_signed_in_admin_sending_a_bad_key_is_refused_not_served(make_client: Any) -> None:
    client = make_client(name="kept")
    admin = get_user_model().objects.create_superuser("root", "root@example.test", "pw")
    browser = Client()
    browser.force_login(admin)
    response = browser.delete(
        f"/api/v1/oauth-clients/{client.pk}", headers={"Authorization": "Bearer mgk_made-up"}
    )
    assert response.status_code == 401
    assert OAuthClient.objects.filter(pk=client.pk).exists()
    assert browser.delete(f"/api/v1/oauth-clients/{client.pk}").status_code == 204


def test_a_session_without_its_csrf_token_is_still_403() -> None:
    admin = get_user_model().objects.create_superuser("root", "root@example.test", "pw")
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(admin)
    response = browser.post("/api/v1/oauth-clients", data={}, content_type="application/json")
    assert response.status_code == 403
    assert not ApiKey.objects.exists() and not OAuthClient.objects.exists()
