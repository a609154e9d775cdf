"""A provider's claims that make someone staff (the create expression, or User Fields) give an
admin login and no right: through the API a staff user from SSO can take no token and read
nothing until a permission says so, here one given to a group the claims map. Against the real
test provider (oidc-provider)."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.test import Client

from mailgrant.common.models import AuditEvent
from mailgrant.oauth.models import Grant
from tests.sso.signin import sign_in

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

ACCESS_TOKEN = "canary-sso-staff-access-token-c40e"


@pytest.fixture
def staff_from_claims(oidc_client: Any) -> Any:
    """A user-type client whose create expression makes members of "staff" staff users."""
    Group.objects.create(name="support")
    return oidc_client(
        type="user",
        name="Example sign-in",
        scope="openid email profile groups",
        username_attribute="email",
        user_fields={"email": "email", "groups": "groups"},
        user_create_expression='{"is_staff": "staff" in claims.groups}',
    )


@pytest.fixture
def grant(make_client: Any, make_grant: Any) -> Grant:
    return make_grant(make_client(name="shared-mail"), access_token=ACCESS_TOKEN)


def test_a_staff_user_made_by_claims_cannot_take_a_token(
    oidc: Any, staff_from_claims: Any, grant: Grant
) -> None:
    browser = Client()
    assert sign_in(browser, oidc, staff_from_claims, next_url="/admin/").status_code == 302
    user = get_user_model().objects.get(username="alice@example.test")
    assert user.is_staff and not user.is_superuser  # what the claims gave: the admin login
    assert browser.get("/admin/").status_code == 200

    broker = f"/api/v1/grants/{grant.pk}/access-token"
    refused = browser.post(broker)
    assert refused.status_code == 403
    assert "'oauth.issue_token'" in refused.json()["message"]
    assert ACCESS_TOKEN not in refused.content.decode()
    for path in ("/api/v1/mailboxes", "/api/v1/oauth-clients", f"/api/v1/grants/{grant.pk}"):
        assert browser.get(path).status_code == 403, path
    assert not AuditEvent.objects.filter(action="grant.token_issued").exists()

    # Rights come from permissions only, here a group's that the claims put the user in.
    Group.objects.get(name="support").permissions.add(
        Permission.objects.get(content_type__app_label="oauth", codename="issue_token")
    )
    allowed = browser.post(broker)
    assert allowed.status_code == 200 and allowed.json()["access_token"] == ACCESS_TOKEN
    assert browser.get("/api/v1/mailboxes").status_code == 403
