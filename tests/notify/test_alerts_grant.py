"""A grant revoked at the real provider (oidc-provider): exactly one alert email lands in a
real Dovecot mailbox, sent through mailgrant's own outgoing SMTP mailbox; none for the failed
attempts that follow; one recovery email after re-authorization."""

from __future__ import annotations

import contextlib
import email
import email.policy
import imaplib

import pytest

from mailgrant.common.audit import CLI
from mailgrant.common.errors import ServiceError
from mailgrant.mailboxes.models import Mailbox
from mailgrant.mailboxes.services.mailboxes import mailbox_save
from mailgrant.notify.alerts.channels import notification_channel_create
from mailgrant.notify.models import Incident, Notice
from mailgrant.oauth.models import Grant
from mailgrant.oauth.services.tokens import grant_refresh
from tests.notify.alerts_support import alert_round
from tests.servers.dovecot import PASSWORD_USERS

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

SENDER = "pat@example.test"
READER = "quinn@example.test"


def _alerts_about(dovecot, name: str) -> list[email.message.EmailMessage]:
    """The alert emails in the reader's INBOX about `name`, read over IMAP."""
    imap = imaplib.IMAP4("127.0.0.1", dovecot.imap_port)
    try:
        imap.login(READER, PASSWORD_USERS[READER])
        imap.select("INBOX", readonly=True)
        _, found = imap.search(None, "ALL")
        messages = []
        for number in found[0].split():
            _, parts = imap.fetch(number, "(RFC822)")
            raw = parts[0][1]
            message = email.message_from_bytes(raw, policy=email.policy.default)
            if name in str(message["Subject"]):
                messages.append(message)
        return messages
    finally:
        imap.logout()


def test_a_revoked_grant_alerts_once_and_recovers_once(
    dovecot, oidc, oidc_client, validate_headless
) -> None:
    client = oidc_client()
    grant = validate_headless(client).grant
    outgoing = mailbox_save(
        mailbox=Mailbox(
            name=f"alerts-{client.pk}",
            protocol="smtp",
            direction="outgoing",
            host="127.0.0.1",
            port=dovecot.submission_port,
            security="none",
            auth_method="password",
            username=SENDER,
        ),
        password=PASSWORD_USERS[SENDER],
    )
    notification_channel_create(name="ops", recipients=[READER], mailbox=outgoing, actor=CLI)
    assert alert_round() == [] and not Incident.objects.exists()

    assert oidc.revoke_access("alice", client_id=client.client_id) >= 1
    for _ in range(5):  # the refresh that finds it revoked, and the attempts after it
        with contextlib.suppress(ServiceError):
            grant_refresh(grant=Grant.objects.get(pk=grant.pk))
        assert alert_round() in ([], ["sent"])
    grant.refresh_from_db()
    assert grant.health == "needs_reauthorization"
    (incident,) = Incident.objects.all()
    assert incident.resolved_at is None and incident.subject_kind == "grant"
    assert list(Notice.objects.values_list("kind", "state")) == [("opened", "sent")]

    opened = _alerts_about(dovecot, str(grant))
    assert len(opened) == 1
    subject = str(opened[0]["Subject"])
    assert subject.startswith("[mailgrant] Grant ") and "needs re-authorization" in subject
    assert grant.health_reason in subject
    body = opened[0].get_body().get_content()
    assert grant.health_hint.split()[0] in body and incident.url in body
    assert "/admin/oauth/grant/" in incident.url

    validate_headless(client)
    grant.refresh_from_db()
    assert grant.health == "ok"
    assert alert_round() == ["sent"]
    for _ in range(3):
        assert alert_round() == []
    about = _alerts_about(dovecot, str(grant))
    assert len(about) == 2
    assert str(about[1]["Subject"]).startswith("[mailgrant] Resolved: Grant ")
    incident.refresh_from_db()
    assert incident.resolved_at is not None and incident.resolution == "ok again"
