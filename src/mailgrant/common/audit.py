"""Audit rows are written by services, inside the transaction of the change they record."""

from typing import Any

from django.db import models

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


def actor_for(user: Any) -> str:
    if user is None or not getattr(user, "is_authenticated", False):
        return "system"
    return f"user:{user.get_username()}"
