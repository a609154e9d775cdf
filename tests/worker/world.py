"""Real objects in each health, for the status overview's readers (worker, api, cli, admin)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from mailgrant.common.health import Health, Reason, reason_of
from mailgrant.directory.models import LdapDirectory
from mailgrant.mailboxes.models import Mailbox
from mailgrant.oauth.models import Grant, OAuthClient
from mailgrant.worker.models import Worker

REFUSED = Reason(
    "test.refused",
    Health.NEEDS_REAUTHORIZATION,
    "The provider refused the refresh token: press Validate again.",
)


def beating_worker(*, name: str = "host:1:start", age: float = 1.0) -> Worker:
    now = timezone.now()
    return Worker.objects.create(
        name=name,
        hostname="host",
        pid=1,
        started_at=now - timedelta(hours=1),
        beat_at=now - timedelta(seconds=age),
        concurrency=4,
    )


def mailbox(*, name: str, client: OAuthClient | None = None, **fields: Any) -> Mailbox:
    values: dict[str, Any] = {
        "name": name,
        "direction": "incoming",
        "protocol": "imap",
        "host": "127.0.0.1",
        "port": 993,
        "security": "ssl",
        "username": f"{name}@example.test",
        "auth_method": "oauth2" if client else "password",
        "oauth_client": client,
    }
    values.update(fields)
    return Mailbox.objects.create(**values)


def failing(obj: Any, code: str = "connect.refused", *, message: str = "", times: int = 3) -> Any:
    """`obj` after `times` failures for `code`, saved."""
    now = timezone.now()
    changed: set[str] = set()
    for _ in range(times):
        changed |= set(obj.health_failed(reason=reason_of(code), now=now - timedelta(minutes=5)))
    if message and hasattr(obj, "last_error"):
        obj.last_error = message
        changed.add("last_error")
    obj.save(update_fields=changed)
    return obj


def needing_reauthorization(
    grant: Grant, *, message: str = "invalid_grant", default: bool = False
) -> Grant:
    """`grant` refused at its last refresh (not its client's default one unless `default`, so
    that more grants of the client can be made beside it)."""
    now = timezone.now()
    changed = grant.health_failed(reason=REFUSED, now=now)
    grant.last_error = message
    grant.is_default = default
    grant.save(update_fields=[*changed, "last_error", "is_default"])
    return grant


def warning(obj: Any, *, hint: str = "The client secret expires in 12 days.") -> Any:
    changed = obj.health_set(
        health=Health.WARNING, reason="test.soon", hint=hint, now=timezone.now()
    )
    obj.save(update_fields=changed)
    return obj


def directory(*, name: str, **fields: Any) -> LdapDirectory:
    values: dict[str, Any] = {
        "name": name,
        "server_uri": "ldap://127.0.0.1:1",
        "base_dn": "dc=example,dc=test",
    }
    values.update(fields)
    return LdapDirectory.objects.create(**values)


def since(obj: Any) -> datetime | None:
    obj.refresh_from_db()
    return obj.health_since  # type: ignore[no-any-return]
