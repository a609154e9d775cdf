"""A fetch a person asks for and waits on (the admin's Fetch now, the API, `mailgrant mailbox
fetch`): it takes the mailbox's claim first, as a worker does (common.claims), so it never runs
beside a worker's fetch of the same mailbox, nor a worker beside it."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.utils import timezone

from mailgrant.common.audit import Actor
from mailgrant.common.claims import claims_release, claims_renew, claims_take
from mailgrant.common.errors import Conflict
from mailgrant.mailboxes.models import Mailbox
from mailgrant.mailboxes.services.fetch import FetchResult, mailbox_fetch


def mailbox_fetch_now(
    *, mailbox: Mailbox, actor: Actor, progress: Callable[[int, int], None] | None = None
) -> FetchResult:
    """`mailbox_fetch` under the mailbox's claim, held (and renewed) while it runs; Conflict,
    touching nothing, while someone else's fetch of it runs."""
    holder = f"{actor.name}:{os.getpid()}:{threading.get_ident()}"
    lease = max(5, int(settings.MAILGRANT_WORKER_LEASE))
    now = timezone.now()
    taken = claims_take(
        Mailbox.objects.filter(pk=mailbox.pk),
        worker=holder,
        now=now,
        until=now + timedelta(seconds=lease),
        limit=1,
        order_by="pk",
    )
    if not taken:
        busy = Mailbox.objects.filter(pk=mailbox.pk).values_list("claimed_by", flat=True).first()
        raise Conflict(
            f"Mailbox {mailbox.name} is being fetched right now (by {busy or 'another fetch'}): "
            "its new messages arrive with that fetch.",
            code="fetch_in_progress",
        )
    done = threading.Event()

    def renew() -> None:
        # A fetch longer than the lease keeps it, as a worker's heartbeat would.
        try:
            while not done.wait(lease / 3):
                claims_renew(
                    Mailbox,
                    worker=holder,
                    ids=[mailbox.pk],
                    until=timezone.now() + timedelta(seconds=lease),
                )
        finally:
            connection.close()  # this thread's own connection

    renewer = threading.Thread(target=renew, name=f"fetch-claim-{mailbox.pk}", daemon=True)
    renewer.start()
    try:
        return mailbox_fetch(mailbox=mailbox, actor=actor, progress=progress)
    finally:
        done.set()
        renewer.join()
        claims_release(Mailbox, worker=holder, ids=[mailbox.pk])
