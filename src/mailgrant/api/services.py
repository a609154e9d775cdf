"""API keys: created (shown once, optionally with an expiry), authenticated by their hash,
revoked."""

from __future__ import annotations

import functools
import hashlib
import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from mailgrant.api.models import ApiKey
from mailgrant.common import sql
from mailgrant.common.audit import (
    SYSTEM,
    Actor,
    AuditAction,
    AuditTarget,
    audit_record,
    audit_write,
)
from mailgrant.common.errors import Conflict, Invalid
from mailgrant.oauth.broker import GrantRow, cached_token_of, grant_row_sql, grant_used
from mailgrant.oauth.models import Grant
from mailgrant.oauth.protocol import TokenSet

KEY_PREFIX = "mgk_"
# A key's last_used_at is rewritten only when older than this: at most one write a key this
# often, however many calls, and still within this much of the last use.
LAST_USED_PRECISION = timedelta(seconds=5)


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def apikey_create(
    *,
    name: str,
    scopes: Iterable[str],
    expires_at: datetime | None = None,
    actor: Actor = SYSTEM,
) -> tuple[ApiKey, str]:
    """A new key; the plaintext is returned once and never stored. From `expires_at` on (None:
    never) it is refused as a revoked key is."""
    scopes = sorted(set(scopes))
    unknown = set(scopes) - set(ApiKey.Scope.values)
    if not scopes or unknown:
        raise Invalid(
            {
                "scopes": f"Scopes must be among {', '.join(ApiKey.Scope.values)}"
                + (f"; unknown: {', '.join(sorted(unknown))}" if unknown else ".")
            }
        )
    if not name.strip():
        raise Invalid({"name": "A key needs a name."})
    if expires_at is not None and expires_at <= timezone.now():
        raise Invalid({"expires_at": "An expiry must be in the future."})
    if ApiKey.objects.filter(name=name).exists():
        raise Conflict(f"A key named {name!r} exists already.")
    plaintext = KEY_PREFIX + secrets.token_urlsafe(32)
    with transaction.atomic():
        key = ApiKey.objects.create(
            name=name,
            prefix=plaintext[:10],
            key_hash=key_hash(plaintext),
            scopes=scopes,
            expires_at=expires_at,
            created_by=actor.user if actor.user_id else None,
        )
        expiry = f"; expires {expires_at.isoformat(timespec='seconds')}" if expires_at else ""
        audit_record(
            actor=actor,
            target=key,
            action=AuditAction.APIKEY_CREATED,
            message=f"scopes: {' '.join(scopes)}{expiry}",
        )
    return key, plaintext


def apikey_revoke(*, key: ApiKey, actor: Actor = SYSTEM) -> ApiKey:
    with transaction.atomic():
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
        audit_record(actor=actor, target=key, action=AuditAction.APIKEY_REVOKED)
    return key


@dataclass(frozen=True)
class AuthenticatedKey:
    id: int
    name: str
    scopes: frozenset[str]


# Every API call authenticates: one indexed read on the driver's cursor (common.sql; the ORM's
# query building cost 15 times the read), which also says whether last_used_at is stale.
_AUTHENTICATE_SQL = """
SELECT id, name, scopes, (last_used_at IS NULL OR last_used_at < %s)
FROM api_apikey
WHERE key_hash = %s AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > %s)
"""
_NOTE_USE_SQL = "UPDATE api_apikey SET last_used_at = %s WHERE id = %s"


def apikey_authenticate(*, key: str) -> AuthenticatedKey | None:
    """The active key for `key`, its last use noted (to within LAST_USED_PRECISION); None when
    unknown, revoked or expired."""
    if not key.startswith(KEY_PREFIX):
        return None
    now = timezone.now()
    row = sql.execute(
        _AUTHENTICATE_SQL,
        [sql.db_datetime(now - LAST_USED_PRECISION), key_hash(key), sql.db_datetime(now)],
    ).fetchone()
    if row is None:
        return None
    key_id, name, scopes, stale = row
    if stale:
        sql.execute(_NOTE_USE_SQL, [sql.db_datetime(now), key_id])
    return AuthenticatedKey(id=key_id, name=name, scopes=frozenset(_scopes(scopes)))


def _scopes(stored: Any) -> list[str]:
    # SQLite's JSON comes as text; PostgreSQL's may come decoded.
    return json.loads(stored) if isinstance(stored, str) else list(stored)


@functools.cache
def _broker_sql() -> str:
    """The broker's common call in one read: the key (active: neither revoked nor expired), the
    grant and its client (the grant's GrantRow, oauth.broker, last)."""
    grant_select, grant_joins, grant_where = grant_row_sql()
    return (
        "SELECT k.id, k.name, k.scopes, (k.last_used_at IS NULL OR k.last_used_at < %s), "  # noqa: S608
        f"{grant_select} FROM {ApiKey._meta.db_table} k CROSS JOIN {grant_joins} "
        f"WHERE {grant_where} AND k.key_hash = %s AND k.revoked_at IS NULL "
        "AND (k.expires_at IS NULL OR k.expires_at > %s)"
    )


def access_token_issue_by_key(
    *, key: str, grant_id: int, min_valid_seconds: float
) -> TokenSet | None:
    """The token broker's common call, whole: `key` is active and has the tokens scope, the
    grant exists and its token can be handed out as it is (`tokens_usable`); the key's use is
    noted and the grant.token_issued audit row written, as on the API route. None, with nothing
    written, for every other case (unknown, revoked or expired key, another scope, unknown grant, a
    refresh or an error to report): the API route then answers as it always does."""
    if not key.startswith(KEY_PREFIX) or grant_id > sql.MAX_ID:
        return None
    now = timezone.now()
    row = sql.execute(
        _broker_sql(),
        [
            sql.db_datetime(now - LAST_USED_PRECISION),
            grant_id,
            key_hash(key),
            sql.db_datetime(now),
        ],
    ).fetchone()
    if row is None:
        return None
    key_id, name, scopes, stale = row[:4]
    grant = GrantRow(*row[4:])
    if ApiKey.Scope.TOKENS not in _scopes(scopes):
        return None
    cached = cached_token_of(row=grant, min_valid_seconds=min_valid_seconds)
    if cached is None:
        return None
    grant_used(grant_id=grant_id, tokens=cached.tokens)
    if stale:
        sql.execute(_NOTE_USE_SQL, [sql.db_datetime(now), key_id])
    audit_write(
        actor=Actor.api_key(name),
        action=AuditAction.GRANT_TOKEN_ISSUED,
        target=AuditTarget(type=Grant._meta.label_lower, id=str(grant_id), name=cached.grant_name),
    )
    return cached.tokens
