"""The mailbox admin's health: a Health column in the list, the health on top of the change
page, and the form that marks which fields apply (mailgrant/mailbox.js hides the others) while
the server checks the same rules whatever was shown."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from mailgrant.mailboxes.models import Mailbox
from tests.worker import world

pytestmark = pytest.mark.django_db


def _form(**overrides: str) -> dict[str, str]:
    data = {
        "name": "Support inbox",
        "direction": "incoming",
        "protocol": "imap",
        "host": "127.0.0.1",
        "port": "",
        "security": "ssl",
        "username": "alice@example.test",
        "auth_method": "password",
        "password": "",
        "oauth_client": "",
        "grant": "",
        "sasl_mechanism": "xoauth2",
        "smtp_username": "",
        "folder": "INBOX",
        "post_fetch_action": "keep",
        "enabled": "on",
        "poll_interval": "300",
        "push": "poll",
    }
    data.update(overrides)
    return data


def test_the_list_has_a_health_column(admin_client: Any) -> None:
    world.failing(world.mailbox(name="support"))
    page = admin_client.get(reverse("admin:mailboxes_mailbox_changelist")).content.decode()
    assert 'class="mailgrant-health-badge failing"' in page
    assert "check the host and port" in page  # the hint on hover
    assert 'style="' not in page.split('id="result_list"')[1]  # no inline style (CSP)


def test_the_change_page_shows_the_health_on_top(admin_client: Any) -> None:
    box = world.failing(world.mailbox(name="support"), message="[Errno 111] refused")
    page = admin_client.get(reverse("admin:mailboxes_mailbox_change", args=[box.pk])).content
    text = page.decode()
    top = text.index('id="mailgrant-mailbox-health"')
    assert top < text.index('name="name"')
    box_html = text[top : text.index("</div>", top)]
    assert "Failing" in box_html and "connect.refused" in box_html
    assert "check the host and port" in box_html and "[Errno 111] refused" in box_html
    assert "3 failures in a row" in box_html
    assert "mailgrant/mailbox.js" in text


def test_the_form_marks_what_applies_to_what(admin_client: Any) -> None:
    page = admin_client.get(reverse("admin:mailboxes_mailbox_add")).content.decode()
    assert 'data-applies="auth_method=password"' in page
    assert page.count('data-applies="auth_method=oauth2"') == 3  # client, grant, mechanism
    assert 'data-applies="direction=outgoing protocol=smtp"' in page
    assert 'data-applies="direction=incoming protocol=imap"' in page
    assert 'class="module aligned mailgrant-incoming"' in page


def test_hidden_fields_do_not_weaken_the_checks(admin_client: Any) -> None:
    # A password mailbox without a password: refused, as by the API and the command line.
    response = admin_client.post(reverse("admin:mailboxes_mailbox_add"), _form())
    assert response.status_code == 200
    assert "password" in response.context["adminform"].form.errors
    assert not Mailbox.objects.exists()

    # OAuth2 without a client: refused, though the password row is what was shown before.
    response = admin_client.post(
        reverse("admin:mailboxes_mailbox_add"), _form(auth_method="oauth2", password="x")
    )
    assert response.status_code == 200 and not Mailbox.objects.exists()


def test_a_form_without_push_polls(admin_client: Any) -> None:
    data = _form(password="pat-password")
    del data["push"]
    response = admin_client.post(reverse("admin:mailboxes_mailbox_add"), data)
    assert response.status_code == 302, response.content.decode()[:2000]
    assert Mailbox.objects.get().push == Mailbox.Push.POLL


def test_the_other_lists_have_a_health_column_too(
    admin_client: Any, make_client: Any, make_grant: Any
) -> None:
    client = make_client(name="Microsoft 365")
    world.needing_reauthorization(make_grant(client))
    world.warning(client)
    world.failing(world.directory(name="staff"), "connect.timeout")
    for changelist, badge in (
        ("admin:oauth_oauthclient_changelist", "warning"),
        ("admin:oauth_grant_changelist", "needs_reauthorization"),
        ("admin:directory_ldapdirectory_changelist", "failing"),
    ):
        page = admin_client.get(reverse(changelist)).content.decode()
        assert f'class="mailgrant-health-badge {badge}"' in page, changelist
