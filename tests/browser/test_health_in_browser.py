"""The health dashboard on the admin's index and the mailbox form, in Chromium under the CSP: a
failing mailbox and a grant needing re-authorization shown with their hints and the action
that fixes each (Test connection, Re-authorize) working; the mailbox form showing only the
fields that apply as its selects change."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from mailgrant.mailboxes.models import Mailbox
from mailgrant.mailboxes.services.mailboxes import mailbox_save
from tests.worker import world

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _login_admin(page: Any, base: str, django_user_model: Any) -> None:
    django_user_model.objects.create_superuser("admin", "admin@example.test", "admin-pass-1234")
    page.goto(f"{base}/admin/login/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "admin-pass-1234")
    page.click("input[type=submit]")
    page.wait_for_url(f"{base}/admin/")


@pytest.fixture
def watched(page: Any) -> Any:
    page.console_lines = []
    page.on("console", lambda m: page.console_lines.append(f"{m.type}: {m.text}"))
    page.on("pageerror", lambda e: page.console_lines.append(f"pageerror: {e}"))
    return page


def _no_violations(page: Any) -> None:
    lines = page.console_lines
    assert [line for line in lines if "Content Security Policy" in line] == []
    assert [line for line in lines if line.startswith("pageerror")] == []


@pytest.fixture
def refused_port() -> Any:
    with socket.socket() as sock:  # bound, never listening: connections are refused
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def test_the_dashboard_shows_what_is_wrong_and_its_fix_works(
    watched: Any,
    live_server: Any,
    settings: Any,
    oidc: Any,
    oidc_client: Any,
    validate_headless: Any,
    django_user_model: Any,
    refused_port: int,
) -> None:
    page, base = watched, live_server.url
    settings.MAILGRANT_BASE_URL = base
    world.beating_worker()
    client = oidc_client(name="Mail", scope="openid email offline_access mail")
    grant = validate_headless(client).grant
    world.needing_reauthorization(
        grant, message="invalid_grant: grant request is invalid", default=True
    )
    box = mailbox_save(
        mailbox=Mailbox(
            name="support",
            protocol="imap",
            direction="incoming",
            host="127.0.0.1",
            port=refused_port,
            security="none",
            username="pat@example.test",
            auth_method="password",
        ),
        password="pat-password",
    )
    world.failing(box, message="[Errno 111] Connection refused")
    world.mailbox(name="fine")

    _login_admin(page, base, django_user_model)
    page.wait_for_selector("#mailgrant-health")
    assert page.text_content("#mailgrant-health h2").strip() == "Health: Needs reauthorization"
    mailbox_counts = page.locator("#mailgrant-health-counts tr[data-kind=mailbox] td")
    assert mailbox_counts.all_text_contents() == ["1", "0", "1", "0", "0"]

    rows = page.locator("#mailgrant-health-problems .mailgrant-problem")
    assert rows.count() == 2
    grant_row = page.locator(f".mailgrant-problem[data-kind=grant][data-id='{grant.pk}']")
    assert "The provider refused the refresh token" in grant_row.text_content()
    assert "invalid_grant: grant request is invalid" in grant_row.text_content()
    mailbox_row = page.locator(f".mailgrant-problem[data-kind=mailbox][data-id='{box.pk}']")
    assert "connect.refused" in mailbox_row.text_content()
    assert "check the host and port" in mailbox_row.text_content()
    assert "3 failures in a row" in mailbox_row.text_content()
    assert "host:1:start" in page.text_content("#mailgrant-workers")

    # Edit: the mailbox's page, its health on top.
    mailbox_row.locator("a", has_text="support").click()
    page.wait_for_selector("#mailgrant-mailbox-health")
    health_box = page.text_content("#mailgrant-mailbox-health")
    assert "Failing" in health_box and "connect.refused" in health_box
    assert "check the host and port" in health_box

    # Test connection: the mailbox's real test, its transcript saying why.
    page.goto(f"{base}/admin/")
    mailbox_row.locator("button", has_text="Test connection").click()
    page.wait_for_selector("#transcript")
    assert "refused" in page.content().lower()

    # Re-authorize: Validate of that grant, at the provider's sign-in page.
    page.goto(f"{base}/admin/")
    grant_row.locator("button", has_text="Re-authorize").click()
    page.wait_for_url(f"{oidc.issuer}/interaction/**")
    assert page.locator("input[name=login]").count() == 1
    _no_violations(page)


def _shown(page: Any, name: str) -> bool:
    return page.locator(f".form-row.field-{name}").is_visible()


def test_the_mailbox_form_shows_only_what_applies(
    watched: Any, live_server: Any, django_user_model: Any
) -> None:
    page, base = watched, live_server.url
    _login_admin(page, base, django_user_model)
    page.goto(f"{base}/admin/mailboxes/mailbox/add/")
    page.wait_for_selector("#id_auth_method")

    page.select_option("#id_protocol", "imap")
    page.select_option("#id_direction", "")
    page.select_option("#id_auth_method", "password")
    assert _shown(page, "password")
    for name in ("oauth_client", "grant", "sasl_mechanism", "smtp_username"):
        assert not _shown(page, name), name
    for name in ("folder", "post_fetch_action", "poll_interval", "push"):
        assert _shown(page, name), name

    page.select_option("#id_auth_method", "oauth2")
    assert not _shown(page, "password")
    for name in ("oauth_client", "grant", "sasl_mechanism"):
        assert _shown(page, name), name

    page.select_option("#id_protocol", "pop3")
    assert not _shown(page, "push") and _shown(page, "folder")

    page.select_option("#id_protocol", "smtp")  # direction empty: from the protocol, sending
    assert _shown(page, "smtp_username")
    for name in ("folder", "post_fetch_action", "poll_interval", "push"):
        assert not _shown(page, name), name
    assert not page.locator("fieldset.mailgrant-incoming").is_visible()

    page.select_option("#id_direction", "incoming")
    page.select_option("#id_protocol", "imap")
    assert not _shown(page, "smtp_username") and _shown(page, "push")
    _no_violations(page)
