"""Every page under the strict Content-Security-Policy, in Chromium: the login pages with their
sign-in buttons (an uploaded data: icon), the admin's lists and forms, a mailbox's Test result,
the Swagger UI (served from mailgrant, not a CDN). The console shows no CSP violation, no
request leaves the machine, and a button that ends at the provider (Authorize) still gets there."""

import base64
from typing import Any
from urllib.parse import urlsplit

import pytest

from mailgrant.sso.icons import icon_data_uri
from mailgrant.sso.models import SignIn
from tests.servers.oidc import ACCOUNTS

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

# A 1x1 PNG, the kind of image an administrator uploads for a sign-in button.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
POLICY = (
    "default-src 'self'",
    "img-src 'self' data:",
    "object-src 'none'",
    "base-uri 'self'",
    "frame-ancestors 'none'",
)


@pytest.fixture
def watched(page: Any) -> Any:
    """The page, with every console message and every request's URL recorded."""
    page.console_lines = []
    page.requested = []
    page.on("console", lambda m: page.console_lines.append(f"{m.type}: {m.text}"))
    page.on("pageerror", lambda e: page.console_lines.append(f"pageerror: {e}"))
    page.on("request", lambda r: page.requested.append(r.url))
    return page


def _visit(page: Any, url: str) -> Any:
    response = page.goto(url)
    assert response.status == 200, url
    policy = response.headers.get("content-security-policy", "")
    assert all(part in policy for part in POLICY), (url, policy)
    page.wait_for_load_state("networkidle")
    return response


def test_every_page_works_under_the_policy(
    watched: Any,
    live_server: Any,
    settings: Any,
    oidc: Any,
    dovecot: Any,
    oidc_client: Any,
    validate_headless: Any,
    django_user_model: Any,
) -> None:
    page, base = watched, live_server.url
    settings.MAILGRANT_BASE_URL = base
    mail_client = oidc_client(name="Mail", scope="openid email offline_access mail")
    grant = validate_headless(mail_client).grant
    sign_in_client = oidc_client(name="Example ID", type="user", scope="openid email")
    SignIn.objects.update_or_create(
        client=sign_in_client,
        defaults={"login_button_caption": "Sign in", "login_button_image": icon_data_uri(PNG)},
    )
    from mailgrant.mailboxes.models import Mailbox
    from mailgrant.mailboxes.services.mailboxes import mailbox_save

    mailbox = mailbox_save(
        mailbox=Mailbox(
            name="support",
            protocol="imap",
            direction="incoming",
            host="127.0.0.1",
            port=dovecot.imap_port,
            security="none",
            username="alice@example.test",
            oauth_client=mail_client,
            grant=grant,
        ),
        password=None,
    )

    _visit(page, f"{base}/accounts/login/")
    icon = page.locator("button.mailgrant-sso-button img")
    assert icon.get_attribute("src").startswith("data:image/png;base64,")
    assert page.evaluate("(img) => img.naturalWidth", icon.element_handle()) == 1

    django_user_model.objects.create_superuser("admin", "admin@example.test", "admin-pass-1234")
    _visit(page, f"{base}/admin/login/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "admin-pass-1234")
    page.click("input[type=submit]")
    page.wait_for_url(f"{base}/admin/")

    for path in (
        "/admin/",
        "/admin/oauth/oauthclient/",
        f"/admin/oauth/oauthclient/{mail_client.pk}/change/",
        "/admin/oauth/oauthclient/add/",
        "/admin/mailboxes/mailbox/",
        "/admin/directory/ldapdirectory/add/",
        "/admin/common/auditevent/",
    ):
        _visit(page, base + path)

    _visit(page, f"{base}/admin/mailboxes/mailbox/{mailbox.pk}/change/")
    page.click("text=Test connection")
    page.wait_for_selector("#transcript")
    assert page.evaluate("getComputedStyle(document.querySelector('#transcript')).whiteSpace") == (
        "pre-wrap"
    )

    _visit(page, f"{base}/api/v1/docs")
    page.wait_for_selector(".swagger-ui .info .title")
    assert "mailgrant" in page.text_content(".swagger-ui .info .title").lower()
    assert page.locator(".opblock").count() > 5

    # A button whose form ends at the provider: form-action names that origin on this page.
    _visit(page, f"{base}/admin/mailboxes/mailbox/{mailbox.pk}/change/")
    console, requested = list(page.console_lines), list(page.requested)
    page.click("text=Authorize")
    page.wait_for_url(f"{oidc.issuer}/interaction/**")
    page.fill("input[name=login]", "alice@example.test")
    page.fill("input[name=password]", ACCOUNTS["alice@example.test"]["password"])

    assert [line for line in console if "Content Security Policy" in line] == []
    assert [line for line in console if line.startswith("pageerror")] == []
    hosts = {urlsplit(url).hostname for url in requested if not url.startswith("data:")}
    assert hosts and hosts <= {"127.0.0.1", "localhost"}, hosts
