"""Sign-in with a user-type client against the real test provider (oidc-provider): the login
page's buttons, provisioning with mapped claims and the create expression, both user data
sources, and every way a sign-in must be refused without creating anything."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client

from mailgrant.common.models import AuditEvent
from mailgrant.oauth.models import OAuthClient
from mailgrant.sso.models import SsoIdentity
from tests.servers.oidc import ACCOUNTS
from tests.sso.signin import callback_path, page_text, query_of, sign_in, sign_in_start

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

User = get_user_model()
ALLOW_EXAMPLE = 'claims.email.endsWith("@example.test") && "support" in claims.groups'
MAPPING = {
    "email": "email",
    "first_name": "given_name",
    "last_name": "family_name",
    "groups": "groups",
}


@pytest.fixture
def sso_client(oidc_client: Any) -> Any:
    def make(**fields: Any) -> OAuthClient:
        fields.setdefault("name", "Example sign-in")
        fields.setdefault("scope", "openid email profile groups address")
        fields.setdefault("username_attribute", "email")
        fields.setdefault("user_fields", MAPPING)
        fields.setdefault("user_create_expression", ALLOW_EXAMPLE)
        return oidc_client(type="user", **fields)

    return make


@pytest.fixture
def browser() -> Client:
    return Client()


@pytest.fixture(autouse=True)
def _fresh_claims(oidc: Any) -> Any:
    yield
    for account in ACCOUNTS.values():
        oidc.set_claims(account["sub"], {})


def refusals() -> list[str]:
    return list(
        AuditEvent.objects.filter(action="sso.login_refused").values_list("message", flat=True)
    )


def test_the_login_pages_show_one_button_per_enabled_user_type_client(
    browser: Client, sso_client: Any, make_client: Any
) -> None:
    sso_client(name="Staff sign-in", login_button_caption="Sign in with Example ID")
    sso_client(name="Disabled sign-in", status="disabled", client_id="other")
    make_client(name="Mailbox client", type="mailbox")
    for url in ("/admin/login/", "/accounts/login/"):
        html = browser.get(url).content.decode()
        assert html.count('class="mailgrant-sso-button"') == 1, url
        assert "Sign in with Example ID" in html
        assert "mailgrant/icons/key.svg" in html  # the generic provider's default icon
        assert html.index("mailgrant-sso-button") < html.index('name="password"')
        assert "Disabled sign-in" not in html and "Mailbox client" not in html


def test_first_sign_in_creates_the_user_with_mapped_fields_and_the_second_reuses_it(
    browser: Client, oidc: Any, sso_client: Any
) -> None:
    Group.objects.create(name="support")
    client = sso_client(
        user_create_expression='{"is_staff": "staff" in claims.groups}',
    )
    response = sign_in(browser, oidc, client, next_url="/admin/")
    assert response.status_code == 302 and response["Location"] == "/admin/"

    user = User.objects.get(username="alice@example.test")
    assert (user.email, user.first_name, user.last_name) == (
        "alice@example.test",
        "Alice",
        "Example",
    )
    assert user.is_staff and not user.is_superuser and not user.has_usable_password()
    assert list(user.groups.values_list("name", flat=True)) == ["support"]
    assert SsoIdentity.objects.get(client=client, subject="alice").user == user
    assert browser.get("/admin/").status_code == 200  # signed in, as staff

    # A renamed email at the provider: same person (same subject), same user, email updated.
    oidc.set_claims("alice", {"email": "alice.renamed@example.test"})
    again = Client()
    assert sign_in(again, oidc, client).status_code == 302
    assert User.objects.count() == 1
    user.refresh_from_db()
    assert user.email == "alice.renamed@example.test"
    assert user.username == "alice@example.test"
    actions = list(AuditEvent.objects.values_list("action", flat=True))
    assert actions.count("sso.login") == 2 and actions.count("sso.user_created") == 1


def test_a_user_the_expression_rejects_sees_why_and_nothing_is_created(
    browser: Client, oidc: Any, sso_client: Any
) -> None:
    client = sso_client()  # carol has no "support" group
    response = sign_in(browser, oidc, client, login="carol@example.test")
    assert response.status_code == 403
    assert "does not allow an account for carol@example.test" in page_text(response)
    assert not User.objects.exists() and not SsoIdentity.objects.exists()
    assert any("expression_refused" in m for m in refusals())
    assert "_auth_user_id" not in browser.session


def test_an_empty_expression_creates_no_one_but_a_linked_identity_still_signs_in(
    browser: Client, oidc: Any, sso_client: Any
) -> None:
    client = sso_client(user_create_expression="")
    response = sign_in(browser, oidc, client)
    assert response.status_code == 403
    assert "does not create unknown users" in page_text(response)
    assert not User.objects.exists()

    # An administrator links an existing user to the person (SSO identities in the admin).
    admin = User.objects.create_user("alice", "alice@old.example", is_staff=True)
    SsoIdentity.objects.create(client=client, subject="alice", user=admin)
    response = sign_in(Client(), oidc, client)
    assert response.status_code == 302 and response["Location"] == "/admin/"
    admin.refresh_from_db()
    assert admin.email == "alice@example.test" and User.objects.count() == 1


def test_a_local_user_with_the_same_name_is_not_taken_over(
    browser: Client, oidc: Any, sso_client: Any
) -> None:
    User.objects.create_user("alice@example.test", password="local-password-1")
    response = sign_in(browser, oidc, sso_client())
    assert response.status_code == 403
    assert "already exists here but has never signed in" in page_text(response)
    assert not SsoIdentity.objects.exists()


def test_user_data_from_the_endpoint_and_nested_claim_paths(
    browser: Client, oidc: Any, sso_client: Any
) -> None:
    client = sso_client(
        user_data_source="endpoint",
        scope="openid email profile groups address",
        user_fields={"email": "email", "last_name": "address.locality", "first_name": "groups[1]"},
        user_create_expression='claims.address.country == "US"',
    )
    assert sign_in(browser, oidc, client).status_code == 302
    user = User.objects.get()
    assert (user.last_name, user.first_name) == ("Springfield", "support")


def test_a_missing_claim_leaves_its_field_empty_and_a_missing_username_refuses(
    browser: Client, oidc: Any, sso_client: Any
) -> None:
    client = sso_client(
        user_fields={"email": "email", "last_name": "address.locality"},
        user_create_expression="true",
    )
    assert sign_in(browser, oidc, client, login="bob@example.test").status_code == 302
    bob = User.objects.get()
    assert bob.last_name == ""  # bob has no address claim
    login = AuditEvent.objects.get(action="sso.login")
    assert "address.locality" in login.message

    oidc.set_claims("carol", {"email": None})
    response = sign_in(Client(), oidc, client, login="carol@example.test")
    assert response.status_code == 403
    assert "sent no 'email' claim" in page_text(response)
    assert User.objects.count() == 1


def test_forged_and_replayed_state_are_refused(browser: Client, oidc: Any, sso_client: Any) -> None:
    client = sso_client()
    url = sign_in_start(browser, client)
    redirect = oidc.login_headless(url, login="alice@example.test", password="alice-password")
    query = query_of(redirect)

    # An unknown state cannot be told apart from any other: it is refused as such.
    forged = browser.get(
        f"/oauth/callback/{client.pk}/?code={query['code']}&state=forged-state&iss={query['iss']}"
    )
    assert forged.status_code == 400 and "Unknown state" in page_text(forged)
    assert not User.objects.exists()

    assert browser.get(callback_path(redirect)).status_code == 302
    response = browser.get(callback_path(redirect))
    assert response.status_code == 403
    assert "already used" in page_text(response)
    assert User.objects.count() == 1


def test_a_sign_in_finished_in_another_browser_is_refused(
    browser: Client, oidc: Any, sso_client: Any
) -> None:
    client = sso_client()
    url = sign_in_start(browser, client)
    redirect = oidc.login_headless(url, login="alice@example.test", password="alice-password")
    response = Client().get(callback_path(redirect))
    assert response.status_code == 403
    assert "started in another browser" in page_text(response)
    assert not User.objects.exists()


def test_next_redirects_only_to_this_site(browser: Client, oidc: Any, sso_client: Any) -> None:
    client = sso_client()
    for hostile in ("https://elsewhere.example/", "//elsewhere.example/", "/\\elsewhere.example"):
        response = sign_in(Client(), oidc, client, next_url=hostile)
        assert response.status_code == 302
        assert response["Location"] == "/accounts/", hostile
    response = sign_in(browser, oidc, client, next_url="/accounts/?from=test")
    assert response["Location"] == "/accounts/?from=test"


def test_a_client_disabled_during_the_sign_in_is_refused(
    browser: Client, oidc: Any, sso_client: Any
) -> None:
    client = sso_client()
    url = sign_in_start(browser, client)
    redirect = oidc.login_headless(url, login="alice@example.test", password="alice-password")
    OAuthClient.objects.filter(pk=client.pk).update(status="disabled")
    response = browser.get(callback_path(redirect))
    assert response.status_code == 403 and "disabled" in page_text(response)
    assert not User.objects.exists()
    assert browser.post(f"/sso/{client.pk}/start/").status_code == 404


def test_the_start_is_a_post_and_only_for_user_type_clients(
    browser: Client, oidc_client: Any
) -> None:
    mailbox = oidc_client(type="mailbox")
    assert browser.get(f"/sso/{mailbox.pk}/start/").status_code == 405
    assert browser.post(f"/sso/{mailbox.pk}/start/").status_code == 404
    assert browser.post("/sso/999999/start/").status_code == 404


def test_the_provider_refusing_consent_is_reported(
    browser: Client, oidc: Any, sso_client: Any
) -> None:
    client = sso_client()
    url = sign_in_start(browser, client)
    redirect = oidc.login_headless(
        url, login="alice@example.test", password="alice-password", approve=False
    )
    response = browser.get(callback_path(redirect))
    assert response.status_code == 403 and "access_denied" in page_text(response)
    assert not User.objects.exists()


def test_sign_in_logs_and_pages_hold_no_secret_code_or_token(
    browser: Client, oidc: Any, sso_client: Any, caplog: Any
) -> None:
    secret = "canary-sso-client-secret-5e0c2a"
    client = sso_client(client_secret=secret)
    caplog.set_level("DEBUG")
    url = sign_in_start(browser, client)
    redirect = oidc.login_headless(url, login="carol@example.test", password="carol-password")
    code = query_of(redirect)["code"]
    refused = browser.get(callback_path(redirect))
    assert refused.status_code == 403
    pages = page_text(refused) + page_text(browser.get("/accounts/login/"))
    audit = " ".join(AuditEvent.objects.values_list("message", flat=True))
    for text, where in ((caplog.text, "logs"), (pages, "pages"), (audit, "audit rows")):
        assert secret not in text, where
        assert code not in text, where


def test_an_expression_cannot_make_a_superuser_or_break_the_sign_in(
    browser: Client, oidc: Any, sso_client: Any
) -> None:
    client = sso_client(user_create_expression='{"is_superuser": true}')
    response = sign_in(browser, oidc, client)
    assert response.status_code == 403
    assert "sets 'is_superuser', which a sign-in may not set" in page_text(response)

    client.sign_in.user_create_expression = 'claims.department == "Support"'  # no such claim
    client.sign_in.save()
    response = sign_in(Client(), oidc, client)
    assert response.status_code == 403
    assert "user create expression of Example sign-in failed" in page_text(response)
    assert "department" in page_text(response)
    assert not User.objects.exists()
