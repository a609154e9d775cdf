"""The mailboxes' background work, run by the worker (mailgrant.worker.loop): every enabled
incoming mailbox fetched on its interval. Each is claimed through the database first (a
conditional update of next_poll_at), so two workers never fetch one mailbox at once, and each
runs on its own: one that fails, however it fails, never stops the others."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Q
from django.utils import timezone

from mailgrant.common.audit import WORKER
from mailgrant.common.errors import ServiceError
from mailgrant.mailboxes.models import Mailbox
from mailgrant.mailboxes.services.fetch import mailbox_fetch

log = logging.getLogger(__name__)

# A claimed mailbox is not offered again for this long, even if its worker died mid-fetch.
CLAIM_SECONDS = 600


@dataclass(frozen=True)
class PollOutcome:
    mailbox: str
    fetched: int = 0
    error: str = ""


def mailbox_claim(*, mailbox: Mailbox) -> bool:
    """Take the mailbox's turn, unless another worker (with the same view of it) did."""
    now = timezone.now()
    claimed = Mailbox.objects.filter(pk=mailbox.pk, next_poll_at=mailbox.next_poll_at).update(
        next_poll_at=now + timedelta(seconds=CLAIM_SECONDS)
    )
    return claimed == 1


def mailboxes_poll_due() -> list[PollOutcome]:
    """Fetch every enabled incoming mailbox that is due."""
    now = timezone.now()
    due = (
        Mailbox.objects.filter(enabled=True, direction=Mailbox.Direction.INCOMING)
        .filter(Q(next_poll_at__isnull=True) | Q(next_poll_at__lte=now))
        .select_related("oauth_client", "grant")
    )
    outcomes = []
    for mailbox in due:
        if not mailbox_claim(mailbox=mailbox):
            continue  # another worker took it
        try:
            result = mailbox_fetch(mailbox=mailbox, actor=WORKER)  # records outcome, next poll
        except ServiceError as exc:
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
