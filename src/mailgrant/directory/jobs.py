"""The directories' background work, run by the worker: each enabled directory synced when
its next sync has come (on its interval, or backed off after a failure). A directory is
claimed by a conditional update of its next_sync_at, so two workers never sync one at once,
and each sync runs in the worker's pool on its own: one that fails, however it fails, never
stops the others."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from mailgrant.common.audit import WORKER
from mailgrant.common.health import reason_of
from mailgrant.common.jobs import InlineContext, JobContext
from mailgrant.directory.health import directory_next_sync
from mailgrant.directory.models import LdapDirectory
from mailgrant.directory.selectors import ldap_directories_due
from mailgrant.directory.services.sync import SyncResult, ldap_directory_sync

log = logging.getLogger(__name__)

# A claimed directory is not offered again for this long, even if its worker died mid-sync.
CLAIM_SECONDS = 600


def ldap_directory_claim(*, directory: LdapDirectory, now: datetime) -> bool:
    """Take the directory's turn (its next sync moves past the claim) unless another worker,
    with the same view of it, did."""
    rows = LdapDirectory.objects.filter(pk=directory.pk)
    if directory.next_sync_at is None:
        rows = rows.filter(next_sync_at__isnull=True)
    else:
        rows = rows.filter(next_sync_at=directory.next_sync_at)
    return rows.update(next_sync_at=now + timedelta(seconds=CLAIM_SECONDS)) == 1


def ldap_directories_sync_due(ctx: JobContext | None = None, *, now: datetime | None = None) -> Any:
    """Claim the directories due (at most the pool's free slots) and submit each sync to the
    pool. The number submitted; without a context (one inline round as of `now`), the
    results of the syncs themselves."""
    inline = ctx is None
    context: JobContext = ctx or InlineContext(worker=WORKER.name, now=now or timezone.now())
    slots = context.slots()
    submitted = 0
    if slots > 0:
        for directory in ldap_directories_due(now=context.now)[: slots * 2]:
            if submitted >= slots:
                break
            if not ldap_directory_claim(directory=directory, now=context.now):
                continue  # another worker took it
            context.submit(_syncing(directory.pk), label=f"directory {directory.pk}")
            submitted += 1
    if inline:
        assert isinstance(context, InlineContext)
        return [r for r in context.results if isinstance(r, SyncResult)]
    return submitted


def _syncing(pk: int) -> Any:
    def work() -> SyncResult:
        directory = LdapDirectory.objects.get(pk=pk)
        try:
            return ldap_directory_sync(directory=directory, actor=WORKER)
        except Exception as exc:
            log.exception("LDAP directory %s: sync failed unexpectedly", directory.name)
            error = f"unexpected error: {type(exc).__name__}"
            _record_unexpected(directory=directory, error=error)
            return SyncResult(directory=directory.name, ok=False, error=error)

    return work


def _record_unexpected(*, directory: LdapDirectory, error: str) -> None:
    now = timezone.now()
    reason = reason_of("unexpected")
    with transaction.atomic():
        changed = directory.health_failed(reason=reason, now=now)
        directory.last_error = error
        directory.next_sync_at = directory_next_sync(
            interval_minutes=directory.sync_interval,
            now=now,
            failures=directory.consecutive_failures,
            reason=reason,
        )
        directory.save(update_fields=[*changed, "last_error", "next_sync_at", "updated_at"])
