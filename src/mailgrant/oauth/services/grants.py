"""Grants: a new one to authorize, which one is a client's default, and forgetting one."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction
from django.db.models import ProtectedError
from django.utils import timezone

from mailgrant.common.audit import SYSTEM, Actor, AuditAction, audit_record
from mailgrant.common.errors import InUse
from mailgrant.common.health import Health
from mailgrant.common.validation import users_of
from mailgrant.oauth.models import Grant, OAuthClient


def grant_create(*, client: OAuthClient, account: str = "", actor: Actor = SYSTEM) -> Grant:
    """A grant of `client` not authorized yet, for `account` (Validate authorizes it)."""
    with transaction.atomic():
        grant = Grant.objects.create(client=client, account=account)
        audit_record(actor=actor, target=grant, action=AuditAction.GRANT_CREATED)
    return grant


def grant_tokens_drop(*, grants: Iterable[Grant], reason: str) -> int:
    """Forget the tokens of `grants` (both token sets): each must be validated again, for
    `reason`. The caller writes the audit row, in its own transaction. Returns how many held
    tokens."""
    held = [g.pk for g in grants if g.token_set or g.original_token_set]
    now = timezone.now()
    Grant.objects.filter(pk__in=held).update(
        state=Grant.State.REAUTHORIZATION_REQUIRED,
        token_set="",
        original_token_set="",
        expires_at=None,
        last_error=reason,
        last_error_at=now,
        updated_at=now,
        health=Health.NEEDS_REAUTHORIZATION.value,
        health_reason="grant.not_authorized",
        health_hint=reason,
        health_since=now,
        next_refresh_at=None,
        refresh_claimed_by="",
    )
    return len(held)


def grant_set_default(*, grant: Grant, actor: Actor = SYSTEM) -> Grant:
    """Make `grant` the one its client uses wherever no grant is named (mailboxes, refresh)."""
    with transaction.atomic():
        grant = Grant.objects.select_for_update().select_related("client").get(pk=grant.pk)
        if grant.is_default:
            return grant
        # The old default goes first: one default per client is a database constraint.
        Grant.objects.filter(client_id=grant.client_id, is_default=True).update(is_default=False)
        grant.is_default = True
        grant.save(update_fields=["is_default", "updated_at"])
        audit_record(actor=actor, target=grant, action=AuditAction.GRANT_DEFAULT_SET)
    return grant


def grant_delete(*, grant: Grant, actor: Actor = SYSTEM) -> None:
    """Forget `grant` and its tokens; refused, changing nothing, while anything uses it (a
    mailbox would otherwise fall back to another account without a word)."""
    try:
        with transaction.atomic():
            audit_record(actor=actor, target=grant, action=AuditAction.GRANT_DELETED)
            grant.delete()
    except ProtectedError as exc:
        raise InUse(f"{users_of(exc, what='grant')}: point them at another grant first.") from None
