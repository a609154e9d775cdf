"""Importing a directory's people, now or when its interval is due."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from mailgrant.common.audit import SYSTEM, Actor, AuditAction, audit_record
from mailgrant.common.crypto import VaultError
from mailgrant.common.health import Reason
from mailgrant.directory import ldap
from mailgrant.directory.health import directory_next_sync, directory_reason_of
from mailgrant.directory.models import DirectoryAccount, LdapDirectory
from mailgrant.directory.selectors import (
    ldap_directory_attribute_map,
    ldap_directory_config,
)
from mailgrant.directory.services.accounts import (
    directory_account_disable,
    directory_account_upsert,
    directory_failure_text,
    entry_user_values,
    username_usable,
)

log = logging.getLogger(__name__)


MAX_CONFLICTS_NAMED = 20
HEALTH_FIELDS = ("health", "health_reason", "health_hint", "health_since", "consecutive_failures")


@dataclass
class SyncResult:
    directory: str
    ok: bool = True
    error: str = ""
    created: int = 0
    updated: int = 0
    disabled: int = 0
    unchanged: int = 0
    skipped: int = 0
    conflicts: list[str] = field(default_factory=list)

    @property
    def summary(self) -> str:
        if not self.ok:
            return "failed"
        text = (
            f"{self.created} created, {self.updated} updated, {self.disabled} disabled, "
            f"{len(self.conflicts)} conflicts"
        )
        return text + (f", {self.skipped} skipped" if self.skipped else "")

    @property
    def details(self) -> str:
        """The summary and the usernames in conflict (the first few)."""
        if not self.ok:
            return self.error
        if not self.conflicts:
            return self.summary
        named = ", ".join(self.conflicts[:MAX_CONFLICTS_NAMED])
        more = len(self.conflicts) - MAX_CONFLICTS_NAMED
        return f"{self.summary}; conflicts: {named}" + (f" and {more} more" if more > 0 else "")


def ldap_directory_sync(*, directory: LdapDirectory, actor: Actor = SYSTEM) -> SyncResult:
    """Import the directory's people: create and update their users, disable the ones it no
    longer lists or marks disabled. A failure (server down, bind refused, bad base DN or filter)
    changes no user: it is the result's error, the directory's last_error and an audit row."""
    result = SyncResult(directory=directory.name)
    if not directory.is_enabled:
        result.ok, result.error = False, f"The directory {directory.name} is disabled."
        return result
    mapping = ldap_directory_attribute_map(directory=directory)
    try:
        if not mapping.get("username"):
            raise ldap.LdapError("The attribute map names no username attribute.", kind="config")
        entries = ldap.search_people(
            ldap_directory_config(directory=directory), attributes=sorted(set(mapping.values()))
        )
    except (ldap.LdapError, VaultError) as exc:
        result.ok, result.error = False, directory_failure_text(exc)
        _record_failure(
            directory=directory, result=result, actor=actor, reason=directory_reason_of(exc)
        )
        return result

    now = timezone.now()
    with transaction.atomic():
        # One sync of a directory at a time (a row lock where the database has them; SQLite's
        # write lock serializes whole transactions anyway).
        LdapDirectory.objects.select_for_update().filter(pk=directory.pk).exists()
        _apply_entries(directory=directory, entries=entries, mapping=mapping, now=now, into=result)
        fields = {
            "last_sync_at": now,
            "last_sync_summary": result.summary,
            "last_error": "",
            "last_success_at": now,
            "next_sync_at": directory_next_sync(interval_minutes=directory.sync_interval, now=now),
            **_health_fields(directory=directory, now=now, reason=None),
        }
        LdapDirectory.objects.filter(pk=directory.pk).update(**fields)
        for name, value in fields.items():
            setattr(directory, name, value)
        directory.health_announce()
        audit_record(
            actor=actor,
            target=directory,
            action=AuditAction.LDAP_DIRECTORY_SYNCED,
            outcome="ok",
            message=result.details,
        )
    log.info("LDAP directory %s synced: %s", directory.name, result.details)
    return result


def _apply_entries(
    *,
    directory: LdapDirectory,
    entries: list[ldap.DirectoryEntry],
    mapping: dict[str, str],
    now: datetime,
    into: SyncResult,
) -> None:
    accounts = {
        a.username.lower(): a
        for a in DirectoryAccount.objects.filter(directory=directory).select_related("user")
    }
    seen: set[str] = set()
    seen_ids: list[int] = []
    for entry in entries:
        values = entry_user_values(entry, mapping)
        username = values.get("username", "")
        if not username_usable(username):
            into.skipped += 1
            continue
        key = username.lower()
        if key in seen:
            into.conflicts.append(f"{username} (listed twice)")
            continue
        seen.add(key)
        outcome, account = directory_account_upsert(
            directory=directory,
            account=accounts.get(key),
            values=values,
            dn=entry.dn,
            disabled=entry.disabled,
            now=now,
        )
        if account is None:
            into.conflicts.append(username)
            continue
        setattr(into, outcome, getattr(into, outcome) + 1)
        seen_ids.append(account.pk)
    for key, account in accounts.items():
        if key not in seen and not account.is_disabled:
            directory_account_disable(account, now)
            into.disabled += 1
    for start in range(0, len(seen_ids), 500):  # what the directory still lists was seen now
        DirectoryAccount.objects.filter(pk__in=seen_ids[start : start + 500]).update(synced_at=now)


def _health_fields(*, directory: LdapDirectory, now: datetime, reason: Reason | None) -> dict:
    """The directory's health after a sync (its health fields read again first: another
    worker may have counted a failure since it was loaded), as the changed values."""
    current = LdapDirectory.objects.filter(pk=directory.pk).values(*HEALTH_FIELDS).first()
    directory.health_load(current or {})
    if reason is None:
        changed = directory.health_succeeded(now=now)
    else:
        changed = directory.health_failed(reason=reason, now=now)
    return {name: getattr(directory, name) for name in changed}


def _record_failure(
    *, directory: LdapDirectory, result: SyncResult, actor: Actor, reason: Reason
) -> None:
    now = timezone.now()
    with transaction.atomic():
        fields = {
            "last_sync_at": now,
            "last_sync_summary": result.summary,
            "last_error": result.error,
            **_health_fields(directory=directory, now=now, reason=reason),
        }
        fields["next_sync_at"] = directory_next_sync(
            interval_minutes=directory.sync_interval,
            now=now,
            failures=directory.consecutive_failures,
            reason=reason,
        )
        LdapDirectory.objects.filter(pk=directory.pk).update(**fields)
        directory.health_announce()
        audit_record(
            actor=actor,
            target=directory,
            action=AuditAction.LDAP_DIRECTORY_SYNC_FAILED,
            outcome="failed",
            message=result.error,
        )
    for name, value in fields.items():
        setattr(directory, name, value)
    log.warning("LDAP directory %s: sync failed: %s", directory.name, result.error)
