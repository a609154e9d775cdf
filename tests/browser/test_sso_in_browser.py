"""Single sign-on as a person does it, in Chromium: the button on the admin's login page, the
provider's login and consent pages, and back in the admin as the provisioned user. A second
sign-in reuses the user; a person the create expression rejects sees why, and no user exists."""

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from mailgrant.sso.models import SsoIdentity
from tests.servers.oidc import ACCOUNTS

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

User = get_user_model()
EXPRESSION = (
    '{"create": claims.email.endsWith("@example.test") && "support" in claims.groups, '
    '"is_staff": "staff" in claims.groups}'
)


def _sign_in_at_provider(page: Any, oidc: Any, login: str) -> None:
    page.wait_for_url(f"{oidc.issuer}/interaction/**")
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", ACCOUNTS[login]["password"])
    page.click("button[type=submit]")
    page.wait_for_selector("text=Continue")
    page.click("button[type=submit]")


def test_sign_in_with_the_button_provisions_then_reuses_the_user(
    browser: Any, page: Any, live_server: Any, settings: Any, oidc: Any, oidc_client: Any
) -> None:
    base = live_server.url
    settings.MAILGRANT_BASE_URL = base
    Group.objects.create(name="support")
    client = oidc_client(
        name="Example ID",
        type="user",
        scope="openid email profile groups",
        username_attribute="email",
        user_fields={
            "email": "email",
            "first_name": "given_name",
            "last_name": "family_name",
            "groups": "groups",
        },
        user_create_expression=EXPRESSION,
        login_button_caption="Sign in with Example ID",
        login_button_icon="building",
    )

    page.goto(f"{base}/admin/login/?next=/admin/")
    button = page.locator("button.mailgrant-sso-button", has_text="Sign in with Example ID")
    assert button.locator("img").get_attribute("src").endswith("mailgrant/icons/building.svg")
    button.click()
    _sign_in_at_provider(page, oidc, "alice@example.test")
    page.wait_for_url(f"{base}/admin/")
    assert "Welcome, Alice" in " ".join(page.text_content("#user-tools").split())

    alice = User.objects.get(username="alice@example.test")
    assert (alice.email, alice.first_name, alice.last_name) == (
        "alice@example.test",
        "Alice",
        "Example",
    )
    assert alice.is_staff and not alice.is_superuser
    assert list(alice.groups.values_list("name", flat=True)) == ["support"]

    # Another browser session, the same person: the same user, no second one.
    second = browser.new_context()
    try:
        other = second.new_page()
        other.goto(f"{base}/accounts/login/")
        other.click("button.mailgrant-sso-button")
        _sign_in_at_provider(other, oidc, "alice@example.test")
        other.wait_for_url(f"{base}/admin/")
    finally:
        second.close()
    assert User.objects.count() == 1
    assert SsoIdentity.objects.get(client=client).user == alice


def test_a_person_the_expression_rejects_sees_why_and_no_user_exists(
    page: Any, live_server: Any, settings: Any, oidc: Any, oidc_client: Any
) -> None:
    settings.MAILGRANT_BASE_URL = live_server.url
    oidc_client(
        name="Example ID",
        type="user",
        scope="openid email profile groups",
        username_attribute="email",
        user_create_expression=EXPRESSION,
    )
    page.goto(f"{live_server.url}/accounts/login/")
    page.click("button.mailgrant-sso-button")
    _sign_in_at_provider(page, oidc, "carol@example.test")
    page.wait_for_selector("#sso-refusal")
    assert "does not allow an account for carol@example.test" in page.text_content("#sso-refusal")
    assert not User.objects.exists()
