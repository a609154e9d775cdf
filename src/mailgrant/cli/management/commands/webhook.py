from argparse import ArgumentParser
from typing import Any

from django.core.management.base import CommandError

from mailgrant.cli.support import (
    AdminCommand,
    add_bool_argument,
    confirm,
    help_of,
    human,
    json_text,
)
from mailgrant.common.audit import CLI
from mailgrant.common.errors import NotFound
from mailgrant.notify.models import Delivery, WebhookEndpoint
from mailgrant.notify.selectors import (
    delivery_get,
    delivery_list,
    delivery_public,
    webhook_endpoint_get_by_name,
    webhook_endpoint_list,
    webhook_endpoint_public,
)
from mailgrant.notify.services.deliveries import deliveries_redeliver_since, delivery_redeliver
from mailgrant.notify.services.endpoints import (
    webhook_endpoint_create,
    webhook_endpoint_delete,
    webhook_endpoint_rotate_secret,
    webhook_endpoint_test,
    webhook_endpoint_update,
)

from .apikey import _moment
from .events import page_size


class Command(AdminCommand):
    help = (
        "Webhook endpoints: list, add (the signing secret is printed once), update, delete, "
        "rotate-secret, test, deliveries, redeliver."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        listing = sub.add_parser("list", help="List endpoints and their health.")
        listing.add_argument("--json", action="store_true")

        add = sub.add_parser(
            "add",
            help="Add an endpoint; its signing secret is printed once, alone on stdout.",
        )
        self._field_arguments(add, creating=True)
        update = sub.add_parser("update", help="Change the fields given; the others stay.")
        update.add_argument("current_name", metavar="NAME")
        self._field_arguments(update, creating=False)
        delete = sub.add_parser("delete", help="Delete an endpoint and its deliveries.")
        delete.add_argument("name")
        delete.add_argument("--yes", action="store_true", help="do not ask")

        rotate = sub.add_parser(
            "rotate-secret",
            help="A new signing secret, printed once, alone on stdout; the old one stops.",
        )
        rotate.add_argument("name")

        test = sub.add_parser("test", help="Send a webhook.test event to this endpoint alone.")
        test.add_argument("name")
        test.add_argument("--json", action="store_true")

        deliveries = sub.add_parser("deliveries", help="Recent deliveries with their attempts.")
        deliveries.add_argument("name")
        deliveries.add_argument("--state", choices=Delivery.State.values)
        deliveries.add_argument("--limit", type=page_size, default=20, metavar="N")
        deliveries.add_argument("--json", action="store_true")

        redeliver = sub.add_parser(
            "redeliver", help="Deliver again, with the same webhook-id: one delivery or all since."
        )
        redeliver.add_argument("name")
        which = redeliver.add_mutually_exclusive_group(required=True)
        which.add_argument("--delivery", type=int, metavar="ID")
        which.add_argument(
            "--since",
            type=_moment,
            metavar="DATE",
            help="every delivery of an event since DATE (ISO 8601; without an offset, in "
            "MAILGRANT_TIME_ZONE)",
        )

    def _field_arguments(self, parser: ArgumentParser, *, creating: bool) -> None:
        parser.add_argument("--name", required=creating, help=None if creating else "rename")
        parser.add_argument("--url", required=creating, help="http(s) URL events are POSTed to")
        parser.add_argument(
            "--event-type",
            action="append",
            dest="event_types",
            metavar="TYPE",
            help="repeatable (message.received, grant.*); none given: all"
            + ("" if creating else "; '' for all"),
        )
        parser.add_argument("--mailbox", metavar="NAME", help="only this mailbox's ('' for any)")
        parser.add_argument("--client", metavar="NAME", help="only this client's ('' for any)")
        add_bool_argument(parser, "enabled", help_of(WebhookEndpoint, "enabled") or "enabled")
        add_bool_argument(parser, "include-raw", help_of(WebhookEndpoint, "include_raw"))
        parser.add_argument(
            "--raw-max-bytes",
            type=int,
            metavar="BYTES",
            help=help_of(WebhookEndpoint, "raw_max_bytes"),
        )
        parser.add_argument("--json", action="store_true")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        if action == "list":
            return self._list(as_json=options["json"])
        if action == "add":
            endpoint, secret = webhook_endpoint_create(values=_values(options), actor=CLI)
            self.stdout.write(secret)  # alone on stdout: `SECRET=$(mailgrant webhook add ...)`
            self.stderr.write(
                f"Added webhook endpoint {endpoint.name} ({endpoint.pk}). Its signing secret "
                "is above, shown this once: store it in the receiver now."
            )
            return None
        endpoint = _endpoint(options.get("current_name") or options["name"])
        if action == "update":
            webhook_endpoint_update(endpoint=endpoint, values=_values(options), actor=CLI)
            return self._write(webhook_endpoint_public(endpoint=endpoint), as_json=options["json"])
        if action == "rotate-secret":
            _, secret = webhook_endpoint_rotate_secret(endpoint=endpoint, actor=CLI)
            self.stdout.write(secret)
            self.stderr.write(
                f"Rotated the signing secret of {endpoint.name}: shown this once, above; the "
                "old one signs nothing from now on."
            )
            return None
        if action == "delete":
            confirm(
                f"Delete webhook endpoint {endpoint.name!r} and its deliveries?", yes=options["yes"]
            )
            webhook_endpoint_delete(endpoint=endpoint, actor=CLI)
            self.stdout.write(f"Deleted webhook endpoint {endpoint.name}.")
            return None
        if action == "test":
            delivery = webhook_endpoint_test(endpoint=endpoint, actor=CLI)
            row = delivery_public(delivery=delivery)
            if options["json"]:
                self.stdout.write(json_text(row))
            else:
                self.stdout.write(
                    f"Test event {row['event']} queued for {endpoint.name} (delivery {row['id']})."
                )
            return None
        if action == "deliveries":
            return self._deliveries(endpoint, options)
        if options["delivery"] is not None:
            try:
                delivery = delivery_get(endpoint=endpoint, delivery_id=options["delivery"])
            except NotFound as exc:
                raise CommandError(exc.message) from None
            delivery_redeliver(delivery=delivery, actor=CLI)
            self.stdout.write(f"Delivery {delivery.pk} ({delivery.event.uid}) is due again.")
            return None
        count = deliveries_redeliver_since(endpoint=endpoint, since=options["since"], actor=CLI)
        self.stdout.write(f"{count} deliveries to {endpoint.name} are due again.")
        return None

    def _list(self, *, as_json: bool) -> None:
        rows = [webhook_endpoint_public(endpoint=e) for e in webhook_endpoint_list()]
        if as_json:
            self.stdout.write(json_text(rows))
            return
        for r in rows:
            state = "enabled" if r["enabled"] else "disabled"
            types = ",".join(r["event_types"]) or "all"
            self.stdout.write(f"{r['name']:25} {state:8} {r['health']:10} {types:30} {r['url']}")

    def _write(self, row: dict[str, Any], *, as_json: bool) -> None:
        if as_json:
            self.stdout.write(json_text(row))
            return
        for key, value in row.items():
            self.stdout.write(f"{key + ':':20} {human(value)}")

    def _deliveries(self, endpoint: WebhookEndpoint, options: dict[str, Any]) -> None:
        found = delivery_list(endpoint=endpoint, state=options["state"])[: options["limit"]]
        rows = [delivery_public(delivery=d) for d in found]
        if options["json"]:
            self.stdout.write(json_text(rows))
            return
        for r in rows:
            self.stdout.write(
                f"{r['id']:>6} {r['event']:34} {r['event_type']:28} {r['state']:9} "
                f"attempts {r['attempts']}, last {human(r['last_status'])} {r['last_error'][:60]}"
            )
            for a in r["attempt_log"][:5]:
                outcome = a["status_code"] or a["error"][:60]
                self.stdout.write(f"         {human(a['at'])} {outcome} {a['duration_ms']} ms")


def _endpoint(name: str) -> WebhookEndpoint:
    try:
        return webhook_endpoint_get_by_name(name=name)
    except NotFound as exc:
        raise CommandError(exc.message) from None


def _values(options: dict[str, Any]) -> dict[str, Any]:
    """The fields given as flags; an absent flag is no value (the default, or unchanged)."""
    values: dict[str, Any] = {}
    for field in ("name", "url", "mailbox", "client", "enabled", "include_raw", "raw_max_bytes"):
        if options.get(field) is not None:
            values[field] = options[field]
    if options.get("event_types") is not None:
        values["event_types"] = [t for t in options["event_types"] if t]
    return values
