from argparse import ArgumentParser, ArgumentTypeError
from typing import Any

from mailgrant.cli.support import AdminCommand, json_text
from mailgrant.common.events import event_body
from mailgrant.notify.selectors import events_page

from .apikey import _moment


class Command(AdminCommand):
    help = "Events (the outbox webhooks deliver): list, oldest first, from a cursor."

    def add_arguments(self, parser: ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        listing = sub.add_parser(
            "list", help="Events oldest first; the cursor to go on from goes to stderr."
        )
        listing.add_argument("--type", action="append", dest="types", default=[], metavar="TYPE")
        listing.add_argument("--mailbox", type=int, metavar="ID")
        listing.add_argument("--client", type=int, metavar="ID")
        listing.add_argument("--subject", default="", metavar="app_label.model[:id]")
        listing.add_argument("--since", type=_moment, metavar="DATE")
        listing.add_argument("--until", type=_moment, metavar="DATE")
        listing.add_argument("--after", default="", metavar="CURSOR", help="an id or evt_...")
        listing.add_argument("--limit", type=page_size, default=100, metavar="N", help="1 to 1000")
        listing.add_argument("--json", action="store_true", help="the bodies as webhooks send")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        page = events_page(
            types=options["types"],
            mailbox=options["mailbox"],
            client=options["client"],
            subject=options["subject"],
            since=options["since"],
            until=options["until"],
            after=options["after"],
            limit=options["limit"],
        )
        if options["json"]:
            self.stdout.write(
                json_text(
                    {
                        "events": [event_body(e) for e in page.events],
                        "next": page.next,
                        "has_more": page.has_more,
                    }
                )
            )
            return
        for event in page.events:
            about = event.subject_name or "-"
            sequence = f" #{event.sequence}" if event.sequence is not None else ""
            self.stdout.write(
                f"{event.created_at:%Y-%m-%d %H:%M:%S} {event.uid} {event.type:28} "
                f"{about}{sequence}"
            )
        more = " (more: run again with it)" if page.has_more else ""
        self.stderr.write(f"next: --after {page.next}{more}")


def page_size(text: str) -> int:
    """An argparse type: how many to show, 1 to 1000 (as the API's limit)."""
    try:
        value = int(text)
    except ValueError:
        raise ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 1 <= value <= 1000:
        raise ArgumentTypeError(f"must be between 1 and 1000, not {value}")
    return value
