"""Mailboxes: checked, saved, deleted, and their own account authorized."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from mailgrant.common.audit import actor_for, audit_record
from mailgrant.mailboxes.errors import MailboxError, MailboxInvalid
from mailgrant.mailboxes.models import Mailbox
from mailgrant.oauth.models import Grant
from mailgrant.oauth.services.authorization import StartedAuthorization, authorization_start


def mailbox_check(*, mailbox: Mailbox, password: str | None = None) -> dict[str, str]:
    """Field errors of `mailbox` as it stands (with `password` about to be set), beyond what
    each field checks on its own."""
    errors: dict[str, str] = {}
    if mailbox.protocol and mailbox.direction:
        expected = "outgoing" if mailbox.protocol == Mailbox.Protocol.SMTP else "incoming"
        if mailbox.direction != expected:
            errors["direction"] = f"{mailbox.protocol.upper()} is for {expected} mailboxes."
    client, grant = mailbox.oauth_client, mailbox.grant
    if mailbox.auth_method == Mailbox.AuthMethod.OAUTH2 and client is None:
        errors["oauth_client"] = "Choose the OAuth client (or use a password)."
    if grant is not None and client is not None and grant.client_id != client.pk:
        errors["grant"] = "This grant belongs to another OAuth client."
    if mailbox.auth_method == Mailbox.AuthMethod.PASSWORD and not (password or mailbox.password):
        errors["password"] = "Enter the password for the password method."
    action = mailbox.post_fetch_action or "keep"
    if mailbox.protocol == Mailbox.Protocol.POP3 and action not in ("keep", "delete"):
        errors["post_fetch_action"] = "POP3 can only keep or delete messages."
    return errors


def mailbox_save(*, mailbox: Mailbox, password: str | None = None, user: Any = None) -> Mailbox:
    """Create or update `mailbox`; a non-empty `password` replaces the stored one."""
    errors = mailbox_check(mailbox=mailbox, password=password)
    if errors:
        raise MailboxInvalid(errors)
    if password:
        mailbox.password = password  # type: ignore[assignment]  # sealed on save
    creating = mailbox.pk is None
    with transaction.atomic():
        mailbox.save()
        audit_record(
            actor=actor_for(user),
            user=user,
            target=mailbox,
            action="mailbox.created" if creating else "mailbox.updated",
        )
    return mailbox


def mailbox_delete(*, mailbox: Mailbox, user: Any = None) -> None:
    """Delete `mailbox` and its message index; the message files stay in the store."""
    with transaction.atomic():
        audit_record(actor=actor_for(user), user=user, target=mailbox, action="mailbox.deleted")
        mailbox.delete()


def mailbox_authorize_start(
    *, mailbox: Mailbox, user: Any = None, return_url: str = "", purpose: str = "validate"
) -> StartedAuthorization:
    """Validate this mailbox's own account: a grant of its OAuth client, created when the
    mailbox has none yet, with the mailbox address as login hint. `purpose` as for
    authorization_start ("api" or "cli" for a start outside a browser session)."""
    client = mailbox.oauth_client
    if client is None:
        raise MailboxError("Choose the OAuth client this mailbox logs in with.", kind="config")
    with transaction.atomic():
        grant = mailbox.grant
        if grant is None:
            grant = Grant.objects.create(client=client, account=mailbox.login_username)
            Mailbox.objects.filter(pk=mailbox.pk).update(grant=grant)
            mailbox.grant = grant
    return authorization_start(
        client=client,
        purpose=purpose,
        user=user,
        grant=grant,
        login_hint=mailbox.login_username,
        return_url=return_url,
    )
