"""Who did what: the one `Actor` every service takes as `actor=`, the actions as one enum, and
the row itself (`audit_record` inside the change's transaction; `audit_write` alone, for the
token broker's hot path)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import models
from django.utils import timezone

from mailgrant.common import sql
from mailgrant.common.audit_spool import audit_spool
from mailgrant.common.models import AuditEvent, audit_insert_sql
from mailgrant.common.redaction import redact


@dataclass(frozen=True)
class Actor:
    """Who acts: a person (`user`, their Django user), an API key (`apikey:<name>`), the
    command line (`cli`), or a process (`system`, `worker`, `sso`). Persisted by `name`, so a
    flow that ends later (a Validate's callback) still names who started it."""

    name: str
    user: Any = None

    @classmethod
    def of(cls, user: Any) -> Actor:
        """The actor of a Django user; SYSTEM for none or an anonymous one."""
        if user is None or not getattr(user, "is_authenticated", False):
            return SYSTEM
        return cls(name=f"user:{user.get_username()}", user=user)

    @classmethod
    def api_key(cls, name: str) -> Actor:
        return cls(name=f"apikey:{name}")

    @property
    def user_id(self) -> Any:
        return getattr(self.user, "pk", None)

    def __str__(self) -> str:
        return self.name


SYSTEM = Actor("system")
CLI = Actor("cli")
WORKER = Actor("poller")
SSO = Actor("sso")


class AuditAction(models.TextChoices):
    APIKEY_CREATED = "apikey.created"
    APIKEY_REVOKED = "apikey.revoked"
    DIRECTORY_ACCOUNT_CREATED = "directory_account.created"
    DIRECTORY_ACCOUNT_UPDATED = "directory_account.updated"
    DIRECTORY_ACCOUNT_DISABLED = "directory_account.disabled"
    GRANT_AUTHORIZED = "grant.authorized"
    GRANT_CREATED = "grant.created"
    GRANT_DEFAULT_SET = "grant.default_set"
    GRANT_DELETED = "grant.deleted"
    GRANT_REFRESHED = "grant.refreshed"
    GRANT_REFRESH_FAILED = "grant.refresh_failed"
    GRANT_TOKEN_ISSUED = "grant.token_issued"
    INCIDENT_OPENED = "incident.opened"
    INCIDENT_RESOLVED = "incident.resolved"
    LDAP_DIRECTORY_CREATED = "ldap_directory.created"
    LDAP_DIRECTORY_UPDATED = "ldap_directory.updated"
    LDAP_DIRECTORY_DELETED = "ldap_directory.deleted"
    LDAP_DIRECTORY_SYNCED = "ldap_directory.synced"
    LDAP_DIRECTORY_SYNC_FAILED = "ldap_directory.sync_failed"
    MAILBOX_CREATED = "mailbox.created"
    MAILBOX_UPDATED = "mailbox.updated"
    MAILBOX_DELETED = "mailbox.deleted"
    MAILBOX_FETCHED = "mailbox.fetched"
    MAILBOX_FETCH_REQUESTED = "mailbox.fetch_requested"
    MAILBOX_SENT = "mailbox.sent"
    MAILBOX_TESTED = "mailbox.tested"
    NOTICE_SENT = "notice.sent"
    NOTIFICATION_CHANNEL_CREATED = "notification_channel.created"
    NOTIFICATION_CHANNEL_UPDATED = "notification_channel.updated"
    NOTIFICATION_CHANNEL_DELETED = "notification_channel.deleted"
    NOTIFICATION_CHANNEL_TESTED = "notification_channel.tested"
    OAUTH_CLIENT_CREATED = "oauth_client.created"
    OAUTH_CLIENT_UPDATED = "oauth_client.updated"
    OAUTH_CLIENT_DELETED = "oauth_client.deleted"
    OAUTH_CLIENT_ENABLED = "oauth_client.enabled"
    OAUTH_CLIENT_DISABLED = "oauth_client.disabled"
    OAUTH_CLIENT_VALIDATE_STARTED = "oauth_client.validate_started"
    OAUTH_CLIENT_VALIDATE_FAILED = "oauth_client.validate_failed"
    SSO_IDENTITY_CREATED = "sso_identity.created"
    SSO_IDENTITY_UPDATED = "sso_identity.updated"
    SSO_IDENTITY_DELETED = "sso_identity.deleted"
    SSO_LOGIN = "sso.login"
    SSO_LOGIN_REFUSED = "sso.login_refused"
    SSO_USER_CREATED = "sso.user_created"
    VAULT_ROTATED = "vault.rotated"
    WEBHOOK_CREATED = "webhook.created"
    WEBHOOK_UPDATED = "webhook.updated"
    WEBHOOK_DELETED = "webhook.deleted"
    WEBHOOK_SECRET_ROTATED = "webhook.secret_rotated"
    WEBHOOK_TESTED = "webhook.tested"
    WEBHOOK_DISABLED = "webhook.disabled"
    WEBHOOK_REDELIVERED = "webhook.redelivered"


def audit_record(
    *,
    actor: Actor,
    action: AuditAction | str,
    target: models.Model | None = None,
    outcome: str = "ok",
    message: str = "",
) -> AuditEvent:
    return AuditEvent.objects.create(
        actor=actor.name[:200],
        user_id=actor.user_id,
        action=AuditAction(action),  # an action missing from the enum is refused
        target_type=target._meta.label_lower if target is not None else "",
        target_id=str(target.pk) if target is not None else "",
        target_repr=str(target)[:300] if target is not None else "",
        outcome=outcome,
        message=redact(message),
    )


@dataclass(frozen=True)
class AuditTarget:
    """What a row is about, without the model instance: type (app_label.model), id, name."""

    type: str
    id: str
    name: str


def audit_write(
    *,
    actor: Actor,
    action: AuditAction | str,
    target: AuditTarget,
    outcome: str = "ok",
    message: str = "",
) -> None:
    """The same row as `audit_record`, outside any other write: appended to this process's
    audit spool where it has one (a serving process, see audit_spool), else one INSERT on the
    driver's cursor."""
    values = [
        actor.name[:200],
        actor.user_id,
        str(AuditAction(action)),
        target.type,
        target.id[:100],
        target.name[:300],
        outcome,
        redact(message),
    ]
    now = timezone.now()
    spool = audit_spool()
    if spool is None or not spool.append([now.isoformat(), *values]):
        sql.execute(audit_insert_sql(), [sql.db_datetime(now), *values])
