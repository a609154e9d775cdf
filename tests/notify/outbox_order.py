"""Run as `python -m tests.notify.outbox_order` on a migrated database (MAILGRANT_DATABASE_URL):
an event whose transaction commits after a later id's, polled in between; the pages as JSON."""

from __future__ import annotations

import json
import threading

import django


def main() -> None:
    django.setup()
    from django.db import connection, transaction

    from mailgrant.common.events import event_record
    from mailgrant.notify.selectors import events_page

    with transaction.atomic():
        event_record(type="message.sent", data={"n": 0})
    start = events_page().next
    inserted, commit = threading.Event(), threading.Event()
    slow: dict[str, str] = {}

    def slow_writer() -> None:
        try:
            with transaction.atomic():
                slow["uid"] = event_record(type="message.sent", data={"n": 1}).uid
                inserted.set()
                commit.wait(timeout=60)  # its id is taken; the commit comes later
        finally:
            connection.close()

    writer = threading.Thread(target=slow_writer)
    writer.start()
    inserted.wait(timeout=60)
    with transaction.atomic():
        fast = event_record(type="message.sent", data={"n": 2}).uid
    before = events_page(after=start)
    commit.set()
    writer.join(timeout=60)
    after = events_page(after=before.next)
    print(
        json.dumps(
            {
                "slow": slow["uid"],
                "fast": fast,
                "before": [e.uid for e in before.events],
                "before_next": before.next,
                "start": start,
                "after": [e.uid for e in after.events],
            }
        )
    )


if __name__ == "__main__":
    main()
