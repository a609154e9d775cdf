"""Mailboxes in the admin: the form (with + and pencil beside the OAuth client), the write-only
password, Test connection with its masked transcript, Fetch now, Authorize."""

from urllib.parse import parse_qs, urlsplit

import pytest
from django.urls import reverse

from mailgrant.mailboxes.models import Mailbox, Message
from tests.mailboxes.conftest import message
from tests.servers.dovecot import PASSWORD_USERS
from tests.servers.oidc import ACCOUNTS

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def _form(**overrides):
    data = {
        "name": "Support inbox",
        "direction": "incoming",
        "protocol": "imap",
        "host": "127.0.0.1",
        "port": "",
        "security": "ssl",
        "username": "alice@example.test",
        "auth_method": "oauth2",
        "password": "",
        "oauth_client": "",
        "grant": "",
        "sasl_mechanism": "xoauth2",
        "smtp_username": "",
        "folder": "INBOX",
        "post_fetch_action": "keep",
        "enabled": "on",
        "poll_interval": "300",
    }
    data.update(overrides)
    return data


def test_form_has_the_related_client_icons_and_defaults_ports(admin_client, make_client):
    client = make_client(name="Mail client")
    html = admin_client.get(reverse("admin:mailboxes_mailbox_add")).content.decode()
    assert 'id="add_id_oauth_client"' in html  # the + icon
    assert 'id="change_id_oauth_client"' in html  # the pencil icon
    for field in (
        "name",
        "direction",
        "protocol",
        "host",
        "port",
        "security",
        "username",
        "auth_method",
        "password",
        "oauth_client",
        "grant",
        "sasl_mechanism",
        "smtp_username",
        "folder",
        "post_fetch_action",
        "enabled",
        "poll_interval",
    ):
        assert f'name="{field}"' in html, field
    response = admin_client.post(
        reverse("admin:mailboxes_mailbox_add"), _form(oauth_client=client.pk)
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    assert Mailbox.objects.get().port == 993


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"protocol": "smtp"}, "SMTP is for outgoing mailboxes"),
        ({}, "Choose the OAuth client"),
        ({"auth_method": "password"}, "Enter the password"),
        ({"protocol": "pop3", "post_fetch_action": "move:Archive"}, "POP3 can only keep or delete"),
        ({"post_fetch_action": "explode"}, "Use keep, mark_seen, delete or move:"),
        ({"port": "99999999999"}, "Ensure this value"),
    ],
)
def test_bad_input_is_a_form_error(admin_client, overrides, error):
    response = admin_client.post(reverse("admin:mailboxes_mailbox_add"), _form(**overrides))
    assert response.status_code == 200
    assert error in response.content.decode()
    assert not Mailbox.objects.exists()


def test_password_is_write_only_and_test_shows_a_masked_transcript(admin_client, dovecot):
    user, password = next(iter(PASSWORD_USERS.items()))
    admin_client.post(
        reverse("admin:mailboxes_mailbox_add"),
        _form(
            auth_method="password",
            password=password,
            username=user,
            security="none",
            port=dovecot.imap_port,
        ),
    )
    mailbox = Mailbox.objects.get()
    assert mailbox.password.reveal() == password
    page = admin_client.get(reverse("admin:mailboxes_mailbox_change", args=[mailbox.pk]))
    assert password not in page.content.decode()
    assert "Test connection" in page.content.decode()
    result = admin_client.post(reverse("admin:mailboxes_mailbox_test", args=[mailbox.pk]))
    html = result.content.decode()
    assert "Connected and logged in as pat@example.test" in html
    assert "LOGIN" in html and password not in html
    dovecot.deliver(user, message(1, extra="admin"))
    waiting = len(dovecot.maildir(user))  # other tests leave pat's mail there too
    fetched = admin_client.post(
        reverse("admin:mailboxes_mailbox_fetch", args=[mailbox.pk]), follow=True
    )
    assert f"Fetched {waiting} new message(s)" in fetched.content.decode()
    assert Message.objects.filter(mailbox=mailbox).count() == waiting
    listing = admin_client.get(reverse("admin:mailboxes_message_changelist"))
    assert "Message 1" in listing.content.decode()


def test_authorize_validates_the_mailbox_account_and_refuses_another(
    admin_client, oidc, oidc_client, dovecot
):
    client = oidc_client()
    admin_client.post(
        reverse("admin:mailboxes_mailbox_add"),
        _form(
            oauth_client=client.pk,
            username="bob@example.test",
            security="none",
            port=dovecot.imap_port,
        ),
    )
    mailbox = Mailbox.objects.get()
    start = admin_client.post(reverse("admin:mailboxes_mailbox_authorize", args=[mailbox.pk]))
    assert start.status_code == 302
    assert parse_qs(urlsplit(start["Location"]).query)["login_hint"] == ["bob@example.test"]
    redirect = oidc.login_headless(
        start["Location"],
        login="alice@example.test",
        password=ACCOUNTS["alice@example.test"]["password"],
    )
    parts = urlsplit(redirect)
    landed = admin_client.get(f"{parts.path}?{parts.query}", follow=True)
    text = " | ".join(str(m) for m in landed.context["messages"])
    assert "Signed in as alice@example.test" in text
    assert "this authorization is for bob@example.test: nothing was stored" in text
    mailbox.refresh_from_db()
    assert mailbox.grant is not None and not mailbox.grant.is_default
    assert mailbox.grant.account == "bob@example.test" and mailbox.grant.tokens() is None
