"""The worker: one loop running every app's background jobs until told to stop.

Each job claims its own rows through the database, so any number of workers share the work;
each runs on its own, so one that fails, however it fails, never stops the others."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from django.db import close_old_connections

from mailgrant.directory.jobs import ldap_directories_sync_due
from mailgrant.mailboxes.jobs import mailboxes_poll_due
from mailgrant.oauth.jobs import authorizations_purge_due

log = logging.getLogger(__name__)

Job = Callable[[], Any]
JOBS: tuple[Job, ...] = (mailboxes_poll_due, ldap_directories_sync_due, authorizations_purge_due)


def run_once(*, jobs: Sequence[Job] = JOBS) -> dict[str, Any]:
    """Each job once, in order; a job's result by its name, or the exception that ended it."""
    results: dict[str, Any] = {}
    for job in jobs:
        try:
            results[job.__name__] = job()
        except Exception as exc:
            log.exception("%s failed; it runs again on the next round", job.__name__)
            results[job.__name__] = exc
    return results


def run(stop: threading.Event, *, tick: float = 5.0, jobs: Sequence[Job] = JOBS) -> None:
    """Run the jobs every `tick` seconds until `stop` is set."""
    while not stop.is_set():
        run_once(jobs=jobs)
        close_old_connections()  # a connection the database dropped is not kept between rounds
        stop.wait(tick)
