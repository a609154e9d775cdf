"""A mailbox's secrets never follow a change of its server by themselves: a new host, port or
security without the password again is refused (changing nothing); an OAuth mailbox goes on
with a grant its account authorizes again. The new server is a listener on a real socket."""

from __future__ import annotations

from typing import Any

import pytest

from mailgrant.common.models import AuditEvent
from mailgrant.mailboxes.models import Mailbox
from mailgrant.mailboxes.services.mailboxes import mailbox_save
from mailgrant.oauth.models import Grant
from tests.servers.listener import Listener
from tests.servers.ports import free_port

pytestmark = pytest.mark.django_db

CANARY = "Mailb0x-canary-c41d"
IMAP_GREETING = b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN AUTH=XOAUTH2] ready\r\n"


def _password_mailbox() -> Mailbox:
    return mailbox_save(
        mailbox=Mailbox(
            name="support",
            protocol="imap",
            direction="incoming",
            host="127.0.0.1",
            port=free_port(),  # nothing listens: the saved server
            security="none",
            username="alice@example.test",
            auth_method="password",
        ),
        password=CANARY,
    )


def test_host_change_without_the_password_is_refused_and_sends_nothing(api) -> None:
    mailbox = _password_mailbox()
    with Listener(greeting=IMAP_GREETING) as listener:
        refused = api.patch(f"/mailboxes/{mailbox.pk}", {"port": listener.port})
        assert refused.status_code == 400, refused.content
        assert "password" in {f["field"] for f in refused.json()["fields"]}
        api.post(f"/mailboxes/{mailbox.pk}/test")
        assert not listener.saw(CANARY)
    mailbox.refresh_from_db()
    assert mailbox.port != listener.port and mailbox.password.reveal() == CANARY


def test_host_change_with_the_password_given_again_goes_there(api) -> None:
    mailbox = _password_mailbox()
    with Listener(greeting=IMAP_GREETING) as listener:
        given = "the-new-servers-password"
        changed = api.patch(f"/mailboxes/{mailbox.pk}", {"port": listener.port, "password": given})
        assert changed.status_code == 200, changed.content
        api.post(f"/mailboxes/{mailbox.pk}/test")
        assert listener.saw(given) and not listener.saw(CANARY), bytes(listener.received)


def test_admin_form_refuses_the_change_without_the_password(admin_client) -> None:
    from django.urls import reverse

    mailbox = _password_mailbox()
    form = {
        f: getattr(mailbox, f) for f in ("name", "direction", "protocol", "security", "username")
    }
    form.update(
        host="127.0.0.1",
        port=free_port(),
        auth_method="password",
        password="",
        folder="INBOX",
        post_fetch_action="keep",
        enabled="on",
        poll_interval=300,
        sasl_mechanism="xoauth2",
    )
    answer = admin_client.post(reverse("admin:mailboxes_mailbox_change", args=[mailbox.pk]), form)
    assert answer.status_code == 200  # the form again, with the error
    assert "enter the password again" in answer.content.decode()
    assert Mailbox.objects.get(pk=mailbox.pk).port == mailbox.port


def test_oauth_mailbox_host_change_sends_no_token(api, mail_grant: Any) -> None:
    token = mail_grant.tokens().access_token
    mailbox = mailbox_save(
        mailbox=Mailbox(
            name="oauth-support",
            protocol="imap",
            direction="incoming",
            host="127.0.0.1",
            port=free_port(),
            security="none",
            username="alice@example.test",
            auth_method="oauth2",
            oauth_client=mail_grant.client,
        )
    )
    with Listener(greeting=IMAP_GREETING) as listener:
        changed = api.patch(f"/mailboxes/{mailbox.pk}", {"port": listener.port})
        assert changed.status_code == 200, changed.content
        assert "authorizes it again" in changed.json()["notice"]
        tested = api.post(f"/mailboxes/{mailbox.pk}/test")
        assert tested.status_code != 500
        assert not listener.saw(token)
    mailbox.refresh_from_db()
    assert mailbox.grant is not None and mailbox.grant.pk != mail_grant.pk
    assert mailbox.grant.state == Grant.State.UNAUTHORIZED
    # The client's default grant, which other mailboxes may use, is left as it was.
    assert Grant.objects.get(pk=mail_grant.pk).state == Grant.State.AUTHORIZED
    row = AuditEvent.objects.filter(action="mailbox.updated").latest("id")
    assert "authorizes it again" in row.message
