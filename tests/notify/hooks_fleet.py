"""A separate process for the worker-kill test (run as `python -m tests.notify.hooks_fleet`):

    setup URL COUNT   one endpoint at URL and COUNT events (in batches, as changes commit);
                      prints its secret and the events' ids
    report            prints the deliveries by state

The database and vault come from MAILGRANT_DATABASE_URL / MAILGRANT_HOME, as for `mailgrant`.
"""

import json
import os
import sys

import django


def setup(url: str, count: str) -> dict:
    from django.db import transaction

    from mailgrant.common.audit import CLI
    from mailgrant.common.events import event_build, events_record
    from mailgrant.notify.services.endpoints import webhook_endpoint_create

    _, secret = webhook_endpoint_create(values={"name": "victim-hook", "url": url}, actor=CLI)
    uids: list[str] = []
    remaining = int(count)
    while remaining:
        take = min(remaining, 200)
        with transaction.atomic():
            events = events_record(
                [event_build(type="message.sent", data={"n": len(uids) + i}) for i in range(take)]
            )
        uids += [e.uid for e in events]
        remaining -= take
    return {"secret": secret, "uids": uids}


def report() -> dict:
    from django.db.models import Count

    from mailgrant.notify.models import Delivery

    return {
        "states": dict(
            Delivery.objects.values_list("state").annotate(n=Count("id")).values_list("state", "n")
        )
    }


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mailgrant.config.settings")
    django.setup()
    command, *args = sys.argv[1:]
    print(json.dumps(setup(*args) if command == "setup" else report()))
