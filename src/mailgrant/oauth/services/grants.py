"""Grants: which one is a client's default, and forgetting one."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from mailgrant.common.audit import actor_for, audit_record
from mailgrant.oauth.errors import InUse
from mailgrant.oauth.models import Grant


def grant_set_default(*, grant: Grant, user: Any = None) -> Grant:
    """Make `grant` the one its client uses wherever no grant is named (mailboxes, refresh)."""
    with transaction.atomic():
        grant = Grant.objects.select_for_update().select_related("client").get(pk=grant.pk)
        if grant.is_default:
            return grant
        # The old default goes first: one default per client is a database constraint.
        Grant.objects.filter(client_id=grant.client_id, is_default=True).update(is_default=False)
        grant.is_default = True
        grant.save(update_fields=["is_default", "updated_at"])
        audit_record(actor=actor_for(user), user=user, target=grant, action="grant.default_set")
    return grant


def grant_delete(*, grant: Grant, user: Any = None) -> None:
    """Forget `grant` and its tokens; refused while a mailbox uses it (it would silently fall
    back to another account)."""
    users = sorted(grant.mailboxes.values_list("name", flat=True))  # type: ignore[attr-defined]
    if users:
        raise InUse(
            f"Mailboxes use this grant ({', '.join(users)}): point them at another grant first."
        )
    with transaction.atomic():
        audit_record(actor=actor_for(user), user=user, target=grant, action="grant.deleted")
        grant.delete()
