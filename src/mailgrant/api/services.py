"""API keys: created (shown once), authenticated by their hash, revoked."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.utils import timezone

from mailgrant.api.models import ApiKey
from mailgrant.common.audit import actor_for, audit_record

KEY_PREFIX = "mgk_"


class ApiKeyInvalid(ValueError):
    pass


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def apikey_create(*, name: str, scopes: Iterable[str], user: Any = None) -> tuple[ApiKey, str]:
    """A new key; the plaintext is returned once and never stored."""
    scopes = sorted(set(scopes))
    unknown = set(scopes) - set(ApiKey.Scope.values)
    if not scopes or unknown:
        raise ApiKeyInvalid(
            f"Scopes must be among {', '.join(ApiKey.Scope.values)}"
            + (f"; unknown: {', '.join(sorted(unknown))}" if unknown else ".")
        )
    if not name.strip():
        raise ApiKeyInvalid("A key needs a name.")
    if ApiKey.objects.filter(name=name).exists():
        raise ApiKeyInvalid(f"A key named {name!r} exists already.")
    plaintext = KEY_PREFIX + secrets.token_urlsafe(32)
    with transaction.atomic():
        key = ApiKey.objects.create(
            name=name,
            prefix=plaintext[:10],
            key_hash=key_hash(plaintext),
            scopes=scopes,
            created_by=user if getattr(user, "pk", None) else None,
        )
        audit_record(
            actor=actor_for(user),
            user=user,
            target=key,
            action="apikey.created",
            message=f"scopes: {' '.join(scopes)}",
        )
    return key, plaintext


def apikey_revoke(*, key: ApiKey, user: Any = None) -> ApiKey:
    with transaction.atomic():
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
        audit_record(actor=actor_for(user), user=user, target=key, action="apikey.revoked")
    return key


def apikey_authenticate(*, key: str) -> ApiKey | None:
    """The active key for `key`, its last use noted; None when unknown or revoked."""
    if not key.startswith(KEY_PREFIX):
        return None
    found = ApiKey.objects.filter(key_hash=key_hash(key), revoked_at__isnull=True).first()
    if found is not None:
        now = timezone.now()
        ApiKey.objects.filter(pk=found.pk).update(last_used_at=now)
        found.last_used_at = now
    return found
