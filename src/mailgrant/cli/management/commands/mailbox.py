import json
import mimetypes
import sys
from argparse import ArgumentParser, FileType
from pathlib import Path
from typing import Any

from django.core.management.base import CommandError

from mailgrant.cli.output import write_authorization
from mailgrant.cli.support import (
    AdminCommand,
    add_secret_arguments,
    confirm,
    flag_of,
    help_of,
    human,
    json_text,
    read_secret,
)
from mailgrant.common.audit import CLI
from mailgrant.mailboxes.models import Mailbox
from mailgrant.mailboxes.protocol.compose import Attachment
from mailgrant.mailboxes.services.fetch_now import mailbox_fetch_now
from mailgrant.mailboxes.services.mailboxes import (
    MAILBOX_FIELDS as FIELDS,
)
from mailgrant.mailboxes.services.mailboxes import (
    mailbox_authorize_start,
    mailbox_create,
    mailbox_delete,
    mailbox_update,
)
from mailgrant.mailboxes.services.send import mailbox_send, mailbox_send_message
from mailgrant.mailboxes.services.test import mailbox_test

CHOICES = {
    "direction": Mailbox.Direction.values,
    "protocol": Mailbox.Protocol.values,
    "security": Mailbox.Security.values,
    "auth_method": Mailbox.AuthMethod.values,
    "sasl_mechanism": Mailbox.Mechanism.values,
    "push": Mailbox.Push.values,
}


class Progress:
    """A one-line progress bar on a terminal; nothing at all when stderr is not one."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.enabled = stream.isatty()

    def __call__(self, count: int, size: int) -> None:
        if self.enabled:
            self.stream.write(f"\r  fetched {count} message(s), {size / 1048576:.1f} MB")
            self.stream.flush()

    def done(self) -> None:
        if self.enabled:
            self.stream.write("\n")


class Command(AdminCommand):
    help = (
        "Mailboxes: list, show, add, update, delete, authorize, test, fetch, send. The password "
        "is read from a file or stdin, never from argv."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        listing = sub.add_parser("list", help="List mailboxes and their last outcome.")
        listing.add_argument("--json", action="store_true")
        show = sub.add_parser("show", help="Show a mailbox (never its password).")
        show.add_argument("name")
        show.add_argument("--json", action="store_true")

        add = sub.add_parser("add", help="Add a mailbox.")
        self._field_arguments(add, creating=True)
        update = sub.add_parser(
            "update",
            help="Change the fields given; the others stay.",
            description="Change the fields given; the others stay. A new host, port or "
            "security needs the password given again in the same update (for the password "
            "method); an OAuth mailbox then needs `mailbox authorize` again.",
        )
        update.add_argument("current_name", metavar="NAME")
        self._field_arguments(update, creating=False)
        delete = sub.add_parser(
            "delete", help="Delete a mailbox and its message index (the files stay in the store)."
        )
        delete.add_argument("name")
        delete.add_argument("--yes", action="store_true", help="do not ask")

        authorize = sub.add_parser(
            "authorize",
            help="Print the URL to authorize this mailbox's own account (a grant of its "
            "OAuth client, the address as login hint), in any browser.",
        )
        authorize.add_argument("name")
        authorize.add_argument(
            "--wait",
            action="store_true",
            help="wait for the sign-in; exit 0 when authorized, 1 when refused or expired",
        )

        test = sub.add_parser("test", help="Connect, log in, show the (masked) transcript.")
        test.add_argument("name")
        test.add_argument("--json", action="store_true")

        fetch = sub.add_parser("fetch", help="Fetch new messages into the store.")
        fetch.add_argument("name")
        fetch.add_argument("--json", action="store_true")

        send = sub.add_parser("send", help="Send a message through an outgoing mailbox.")
        send.add_argument("name")
        send.add_argument("--to", action="append", default=[])
        send.add_argument("--cc", action="append", default=[])
        send.add_argument("--bcc", action="append", default=[])
        send.add_argument("--from", dest="sender")
        send.add_argument("--subject", default="")
        send.add_argument("--text", default="")
        send.add_argument("--html-file", type=FileType("r"))
        send.add_argument("--attach", action="append", default=[], metavar="FILE")
        send.add_argument(
            "--raw",
            type=FileType("rb"),
            metavar="FILE",
            help="send this RFC 822 message as it is ('-' for stdin)",
        )

    def _field_arguments(self, parser: ArgumentParser, *, creating: bool) -> None:
        """A flag per field of the mailbox form, named after it; absent means the model's
        default (add) or unchanged (update)."""
        parser.add_argument("--name", required=creating, help=None if creating else "rename")
        parser.add_argument("--host", required=creating)
        parser.add_argument("--port", type=int, help="empty: the usual port of the protocol")
        parser.add_argument("--username", required=creating)
        for field, choices in CHOICES.items():
            parser.add_argument(flag_of(field), choices=choices)
        parser.add_argument(
            "--oauth-client", metavar="NAME", help="the OAuth client to log in with ('' for none)"
        )
        parser.add_argument(
            "--grant", metavar="ID", help="the client's grant to use ('' for the default grant)"
        )
        parser.add_argument(
            "--smtp-username", metavar="TEXT", help=help_of(Mailbox, "smtp_username")
        )
        parser.add_argument("--folder", metavar="TEXT")
        parser.add_argument(
            "--post-fetch-action", metavar="ACTION", help=help_of(Mailbox, "post_fetch_action")
        )
        parser.add_argument("--poll-interval", type=int, metavar="SECONDS")
        enabled = parser.add_mutually_exclusive_group()
        enabled.add_argument("--enabled", action="store_const", const=True, default=None)
        enabled.add_argument("--disabled", action="store_const", const=False, dest="enabled")
        add_secret_arguments(parser, "password", "password")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        if action == "list":
            return self._list(as_json=options["json"])
        if action == "add":
            return self._add(options)
        mailbox = self._mailbox(options.get("current_name") or options["name"])
        if action == "show":
            return self._write(mailbox, as_json=options["json"])
        if action == "update":
            return self._update(mailbox, options)
        if action == "delete":
            return self._delete(mailbox, yes=options["yes"])
        if action == "authorize":
            started = mailbox_authorize_start(mailbox=mailbox, purpose="cli", actor=CLI)
            return write_authorization(self, started, wait=options["wait"])
        if action == "test":
            return self._test(mailbox, as_json=options["json"])
        if action == "fetch":
            return self._fetch(mailbox, as_json=options["json"])
        return self._send(mailbox, options)

    def _mailbox(self, name: str) -> Mailbox:
        try:
            return Mailbox.objects.select_related("oauth_client", "grant").get(name=name)
        except Mailbox.DoesNotExist:
            raise CommandError(f"No mailbox named {name!r}.") from None

    def _list(self, *, as_json: bool) -> None:
        rows = [_public(m) for m in Mailbox.objects.select_related("oauth_client")]
        if as_json:
            self.stdout.write(json_text(rows))
            return
        for r in rows:
            error = str(r["last_error"] or "")
            state = "error: " + error[:60] if error else "ok"
            self.stdout.write(f"{r['name']:25} {r['protocol']:5} {r['username']:30} {state}")

    def _write(self, mailbox: Mailbox, *, as_json: bool) -> None:
        data = _public(mailbox)
        if as_json:
            self.stdout.write(json_text(data))
            return
        for key, value in data.items():
            self.stdout.write(f"{key + ':':18} {human(value)}")

    def _given_fields(self, o: dict[str, Any]) -> dict[str, Any]:
        return {f: o[f] for f in FIELDS if o.get(f) is not None}

    def _password(self, o: dict[str, Any]) -> str | None:
        return read_secret(path=o["password_file"], from_stdin=o["password_stdin"], what="password")

    def _add(self, o: dict[str, Any]) -> None:
        mailbox = mailbox_create(
            values=self._given_fields(o), password=self._password(o), actor=CLI
        )
        self._saved(mailbox, "Added", as_json=o["json"])

    def _update(self, mailbox: Mailbox, o: dict[str, Any]) -> None:
        data = self._given_fields(o)
        password = self._password(o)
        if not data and password is None:
            raise CommandError("Nothing to change: give the flags of the fields to change.")
        mailbox_update(mailbox=mailbox, values=data, password=password, actor=CLI)
        self._saved(mailbox, "Updated", as_json=o["json"])

    def _saved(self, mailbox: Mailbox, verb: str, *, as_json: bool) -> None:
        if as_json:
            self._write(mailbox, as_json=True)
        else:
            self.stdout.write(f"{verb} mailbox {mailbox.name}.")
            if mailbox.save_notice:
                self.stdout.write(mailbox.save_notice)

    def _delete(self, mailbox: Mailbox, *, yes: bool) -> None:
        count = mailbox.messages.count()
        confirm(
            f"Delete mailbox {mailbox.name} and its index of {count} message(s) (the message "
            "files stay in the store)?",
            yes=yes,
        )
        mailbox_delete(mailbox=mailbox, actor=CLI)
        self.stdout.write(f"Deleted mailbox {mailbox.name}.")

    def _test(self, mailbox: Mailbox, *, as_json: bool) -> None:
        result = mailbox_test(mailbox=mailbox, actor=CLI)
        if as_json:
            self.stdout.write(json.dumps(result.__dict__, indent=2, default=list))
        else:
            self.stdout.write(result.transcript)
            self.stdout.write("")
            if result.mechanisms:
                self.stdout.write(f"SASL mechanisms: {' '.join(result.mechanisms)}")
            if result.details:
                self.stdout.write(f"Server error: {json.dumps(result.details)}")
            self.stdout.write(result.message)
        if not result.ok:
            sys.exit(1)

    def _fetch(self, mailbox: Mailbox, *, as_json: bool) -> None:
        progress = Progress(sys.stderr)
        try:
            result = mailbox_fetch_now(mailbox=mailbox, progress=progress, actor=CLI)
        finally:
            progress.done()
        if as_json:
            self.stdout.write(json.dumps(result.__dict__))
            return
        self.stdout.write(
            f"{mailbox.name}: {result.fetched} new message(s), "
            f"{result.bytes} bytes; {result.already_stored} already stored; "
            f"{result.actions} post-fetch action(s)."
        )
        for error in result.errors:
            self.stderr.write(error)

    def _send(self, mailbox: Mailbox, o: dict[str, Any]) -> None:
        if o["raw"]:
            result = mailbox_send(
                mailbox=mailbox,
                recipients=[*o["to"], *o["cc"], *o["bcc"]],
                raw=o["raw"].read(),
                sender=o["sender"],
                actor=CLI,
            )
        else:
            attachments = []
            for name in o["attach"]:
                path = Path(name)
                if not path.is_file():
                    raise CommandError(f"No such file to attach: {name}")
                kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
                attachments.append(Attachment(path.name, path.read_bytes(), kind))
            result = mailbox_send_message(
                mailbox=mailbox,
                to=o["to"],
                cc=o["cc"],
                bcc=o["bcc"],
                subject=o["subject"],
                text=o["text"],
                html=o["html_file"].read() if o["html_file"] else "",
                attachments=attachments,
                sender=o["sender"],
                actor=CLI,
            )
        self.stdout.write(f"Sent to {', '.join(result.accepted)}: {result.reply}")
        for recipient, reason in result.refused.items():
            self.stderr.write(f"refused {recipient}: {reason}")


def _public(mailbox: Mailbox) -> dict[str, Any]:
    """What an administrator may see of a mailbox: every field but the password, whose
    presence alone is told; the OAuth client by name, as --oauth-client takes it."""
    return {
        "id": mailbox.pk,
        **{f: getattr(mailbox, f) for f in FIELDS if f not in ("oauth_client", "grant")},
        "oauth_client": mailbox.oauth_client.name if mailbox.oauth_client else None,
        "grant": mailbox.grant_id,
        "has_password": bool(mailbox.password),
        "last_fetch_at": mailbox.last_fetch_at,
        "last_success_at": mailbox.last_success_at,
        "last_error": mailbox.last_error,
    }
