"""Audit rows are written by services, inside the transaction of the change they record."""

from dataclasses import dataclass
from typing import Any

from django.db import models
from django.utils import timezone

from mailgrant.common import sql
from mailgrant.common.audit_spool import audit_spool
from mailgrant.common.models import AuditEvent
from mailgrant.common.redaction import redact


def audit_record(
    *,
    actor: str,
    action: str,
    target: models.Model | None = None,
    outcome: str = "ok",
    message: str = "",
    user: Any = None,
) -> AuditEvent:
    return AuditEvent.objects.create(
        actor=actor[:200],
        user=user if getattr(user, "pk", None) else None,
        action=action,
        target_type=target._meta.label_lower if target is not None else "",
        target_id=str(target.pk) if target is not None else "",
        target_repr=str(target)[:300] if target is not None else "",
        outcome=outcome,
        message=redact(message),
    )


@dataclass(frozen=True)
class Actor:
    """Who acts when it is not a Django user (an API key, the command line): services take it
    where they take `user`; the audit row names it and links no user."""

    name: str
    pk = None
    is_authenticated = False


def actor_for(user: Any) -> str:
    if isinstance(user, Actor):
        return user.name
    if user is None or not getattr(user, "is_authenticated", False):
        return "system"
    return f"user:{user.get_username()}"


@dataclass(frozen=True)
class AuditTarget:
    """What a row is about, without the model instance: type (app_label.model), id, name."""

    type: str
    id: str
    name: str


# audit_record's row as one INSERT (the ORM's model and query building cost 2.5 times the
# INSERT): for the token broker, which writes a row on every call (bench/broker.py).
INSERT_SQL = (
    "INSERT INTO common_auditevent (at, actor, user_id, action, target_type, target_id, "
    "target_repr, outcome, message) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
)


def audit_write(
    *,
    actor: str,
    action: str,
    target: AuditTarget,
    outcome: str = "ok",
    message: str = "",
    user: Any = None,
) -> None:
    """The same row as `audit_record`, outside any other write: appended to this process's
    audit spool where it has one (a serving process, see audit_spool), else one INSERT on the
    driver's cursor."""
    values = [
        actor[:200],
        getattr(user, "pk", None),
        action,
        target.type,
        target.id[:100],
        target.name[:300],
        outcome,
        redact(message),
    ]
    now = timezone.now()
    spool = audit_spool()
    if spool is None or not spool.append([now.isoformat(), *values]):
        sql.execute(INSERT_SQL, [sql.db_datetime(now), *values])
