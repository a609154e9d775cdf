from argparse import ArgumentParser
from typing import Any

from django.core.management.base import CommandError

from mailgrant.cli.support import AdminCommand, confirm, human, json_text
from mailgrant.common.audit import CLI
from mailgrant.notify.alerts.channels import (
    notification_channel_create,
    notification_channel_delete,
    notification_channel_test,
)
from mailgrant.notify.alerts.selectors import channel_values, channels_list
from mailgrant.notify.models import ALERT_HEALTHS, ALERT_KINDS, NotificationChannel


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


class Command(AdminCommand):
    help = (
        "Alert channels (who is told of incidents): list, add, delete, test. An email channel "
        "sends through an outgoing mailbox (--mailbox) or Django's SMTP settings."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        listing = sub.add_parser("list", help="List the alert channels.")
        listing.add_argument("--json", action="store_true")

        add = sub.add_parser("add", help="Add an alert channel.")
        add.add_argument("name")
        add.add_argument("--kind", choices=NotificationChannel.Kind.values, default="email")
        add.add_argument(
            "--to", dest="recipients", action="append", default=[], help="An address (repeat)."
        )
        add.add_argument("--mailbox", help="Email: the outgoing mailbox to send through.")
        add.add_argument("--endpoint", help="Webhook: the endpoint notified.")
        add.add_argument(
            "--healths",
            default=",".join(ALERT_HEALTHS),
            help=f"Comma-separated, of {', '.join(ALERT_HEALTHS)} (default both).",
        )
        add.add_argument(
            "--kinds",
            default=",".join(ALERT_KINDS),
            help=f"Objects heard of, comma-separated, of {', '.join(ALERT_KINDS)} (default all).",
        )
        add.add_argument("--only-mailbox", help="Only this mailbox's incidents.")
        add.add_argument("--only-client", help="Only this client's (its grants', mailboxes').")
        add.add_argument("--disabled", action="store_true", help="Add it switched off.")
        add.add_argument("--json", action="store_true")

        delete = sub.add_parser("delete", help="Delete an alert channel and its notices.")
        delete.add_argument("name")
        delete.add_argument("--yes", action="store_true")

        test = sub.add_parser("test", help="Send a test notice through a channel now.")
        test.add_argument("name")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        if action == "list":
            return self._list(as_json=options["json"])
        if action == "add":
            return self._add(options)
        channel = self._channel(options["name"])
        if action == "delete":
            confirm(f"Delete alert channel {channel.name} and its notices?", yes=options["yes"])
            notification_channel_delete(channel=channel, actor=CLI)
            self.stdout.write(f"Deleted alert channel {channel.name}.")
            return None
        notice = notification_channel_test(channel=channel, actor=CLI)
        if notice.state == notice.State.HANDED:
            self.stdout.write(f"Test event handed to endpoint {channel.endpoint}'s delivery.")
        else:
            self.stdout.write(f"Test notice sent to {', '.join(channel.recipients)}.")
        return None

    def _channel(self, name: str) -> NotificationChannel:
        try:
            return NotificationChannel.objects.select_related("mailbox", "endpoint").get(name=name)
        except NotificationChannel.DoesNotExist:
            raise CommandError(f"No alert channel named {name!r}.") from None

    def _list(self, *, as_json: bool) -> None:
        rows = [channel_values(c) for c in channels_list()]
        if as_json:
            self.stdout.write(json_text(rows))
            return
        for r in rows:
            where = ", ".join(r["recipients"]) if r["kind"] == "email" else r["endpoint"]
            state = "enabled" if r["enabled"] else "disabled"
            self.stdout.write(f"{r['name']:20} {r['kind']:7} {state:8} {human(where)}")

    def _add(self, o: dict[str, Any]) -> None:
        channel = notification_channel_create(
            name=o["name"],
            kind=o["kind"],
            recipients=o["recipients"],
            mailbox=o["mailbox"],
            endpoint=o["endpoint"],
            healths=_names(o["healths"]),
            subject_kinds=_names(o["kinds"]),
            only_mailbox=o["only_mailbox"],
            only_client=o["only_client"],
            enabled=not o["disabled"],
            actor=CLI,
        )
        if o["json"]:
            self.stdout.write(json_text(channel_values(channel)))
        else:
            self.stdout.write(f"Added alert channel {channel.name}.")
