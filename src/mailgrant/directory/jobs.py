"""The directories' background work, run by the worker (mailgrant.worker.loop)."""

from __future__ import annotations

import logging
from datetime import datetime

from django.utils import timezone

from mailgrant.common.audit import WORKER
from mailgrant.directory.models import LdapDirectory
from mailgrant.directory.selectors import ldap_directories_due
from mailgrant.directory.services.sync import SyncResult, ldap_directory_sync

log = logging.getLogger(__name__)


def ldap_directory_claim(*, directory: LdapDirectory, now: datetime) -> bool:
    """Take the directory's turn (its last_sync_at moves to now) unless another poller did."""
    rows = LdapDirectory.objects.filter(pk=directory.pk)
    if directory.last_sync_at is None:
        rows = rows.filter(last_sync_at__isnull=True)
    else:
        rows = rows.filter(last_sync_at=directory.last_sync_at)
    return rows.update(last_sync_at=now) == 1


def ldap_directories_sync_due(*, now: datetime | None = None) -> list[SyncResult]:
    """Sync every enabled directory whose interval has passed since its last sync or attempt.
    Each is claimed first, so two pollers never sync one directory at once, and each runs on
    its own: one that fails, however it fails, never stops the others."""
    now = now or timezone.now()
    results = []
    for directory in ldap_directories_due(now=now):
        if not ldap_directory_claim(directory=directory, now=now):
            continue
        try:
            results.append(ldap_directory_sync(directory=directory, actor=WORKER))
        except Exception as exc:
            log.exception("LDAP directory %s: sync failed unexpectedly", directory.name)
            error = f"unexpected error: {type(exc).__name__}"
            LdapDirectory.objects.filter(pk=directory.pk).update(last_error=error)
            results.append(SyncResult(directory=directory.name, ok=False, error=error))
    return results
