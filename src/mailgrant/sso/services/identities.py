"""SSO identities by hand: an administrator links a user to a person at the provider before
their first sign-in, or changes or removes a link. Each is audited: a link decides who signs
in as whom."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from mailgrant.common.audit import SYSTEM, Actor, AuditAction, audit_record
from mailgrant.common.errors import Conflict, Invalid
from mailgrant.common.validation import model_errors
from mailgrant.oauth.models import OAuthClient
from mailgrant.sso.models import SsoIdentity


def sso_identity_create(
    *, client: OAuthClient, subject: str, user: Any, issuer: str = "", actor: Actor = SYSTEM
) -> SsoIdentity:
    """A link by hand; without `issuer`, the subject's first sign-in sets it."""
    identity = SsoIdentity(client=client, issuer=issuer, subject=subject, user=user)
    return _identity_save(identity=identity, actor=actor, action=AuditAction.SSO_IDENTITY_CREATED)


def sso_identity_update(*, identity: SsoIdentity, actor: Actor = SYSTEM) -> SsoIdentity:
    """Save `identity` as it now stands (its client, subject or user changed)."""
    return _identity_save(identity=identity, actor=actor, action=AuditAction.SSO_IDENTITY_UPDATED)


def _identity_save(*, identity: SsoIdentity, actor: Actor, action: AuditAction) -> SsoIdentity:
    taken = SsoIdentity.objects.filter(
        client_id=identity.client_id, issuer=identity.issuer, subject=identity.subject
    ).exclude(pk=identity.pk)
    if taken.exists():
        raise Conflict(f"Subject {identity.subject!r} of {identity.client} is linked already.")
    errors = model_errors(identity)
    if errors:
        raise Invalid(errors)
    with transaction.atomic():
        identity.save()
        audit_record(
            actor=actor,
            target=identity,
            action=action,
            message=f"{identity.client.name} subject {identity.subject} -> user "
            f"{identity.user.get_username()}",
        )
    return identity


def sso_identity_delete(*, identity: SsoIdentity, actor: Actor = SYSTEM) -> None:
    with transaction.atomic():
        audit_record(actor=actor, target=identity, action=AuditAction.SSO_IDENTITY_DELETED)
        identity.delete()
