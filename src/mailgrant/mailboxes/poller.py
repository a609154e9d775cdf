"""Polling incoming mailboxes on their interval, and syncing LDAP directories on theirs. Each
mailbox is claimed through the database (a conditional update of next_poll_at), so several
pollers never fetch the same mailbox at once, and one broken mailbox never stops the others;
directories are claimed and isolated the same way, and neither kind of work stops the other."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import timedelta

from django.db import close_old_connections
from django.db.models import Q
from django.utils import timezone

from mailgrant.mailboxes.models import Mailbox
from mailgrant.mailboxes.services import MailboxError, mailbox_fetch
from mailgrant.sso.directory_services import SyncResult, ldap_directories_sync_due

log = logging.getLogger(__name__)

# A claimed mailbox is not offered again for this long, even if its poller died mid-fetch.
CLAIM_SECONDS = 600


@dataclass(frozen=True)
class PollOutcome:
    mailbox: str
    fetched: int = 0
    error: str = ""


def _claim(mailbox: Mailbox) -> bool:
    now = timezone.now()
    claimed = Mailbox.objects.filter(pk=mailbox.pk, next_poll_at=mailbox.next_poll_at).update(
        next_poll_at=now + timedelta(seconds=CLAIM_SECONDS)
    )
    return claimed == 1


def poll_once() -> list[PollOutcome]:
    """Fetch every enabled incoming mailbox that is due."""
    now = timezone.now()
    due = (
        Mailbox.objects.filter(enabled=True, direction=Mailbox.Direction.INCOMING)
        .filter(Q(next_poll_at__isnull=True) | Q(next_poll_at__lte=now))
        .select_related("oauth_client", "grant")
    )
    outcomes = []
    for mailbox in due:
        if not _claim(mailbox):
            continue  # another poller took it
        try:
            result = mailbox_fetch(mailbox=mailbox)  # records its outcome and next poll
        except MailboxError as exc:
            log.warning("Mailbox %s: %s", mailbox.name, exc.message)
            outcomes.append(PollOutcome(mailbox.name, error=exc.message))
        except Exception as exc:  # one mailbox's surprise must not stop the others
            log.exception("Mailbox %s failed unexpectedly", mailbox.name)
            Mailbox.objects.filter(pk=mailbox.pk).update(
                last_error=f"unexpected error: {type(exc).__name__}",
                next_poll_at=timezone.now() + timedelta(seconds=max(mailbox.poll_interval, 10)),
            )
            outcomes.append(PollOutcome(mailbox.name, error=type(exc).__name__))
        else:
            outcomes.append(PollOutcome(mailbox.name, fetched=result.fetched))
    return outcomes


def sync_directories_once() -> list[SyncResult]:
    """Sync every LDAP directory that is due (each isolated from the others)."""
    return ldap_directories_sync_due()


def run(stop: threading.Event, *, tick: float = 5.0) -> None:
    """Poll (mailboxes, then directories) until `stop` is set, waking every `tick` seconds."""
    while not stop.is_set():
        for work in (poll_once, sync_directories_once):
            try:
                work()
            except Exception:
                log.exception("%s failed; trying again in %s s", work.__name__, tick)
            finally:
                close_old_connections()
        stop.wait(tick)
