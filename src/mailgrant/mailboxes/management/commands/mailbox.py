import json
import mimetypes
import sys
from argparse import ArgumentParser, FileType
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from mailgrant.mailboxes.models import Mailbox
from mailgrant.mailboxes.services import (
    Attachment,
    MailboxError,
    compose,
    mailbox_fetch,
    mailbox_save,
    mailbox_send,
    mailbox_test,
)
from mailgrant.oauth.models import Grant, OAuthClient


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


class Command(BaseCommand):
    help = "Mailboxes: list, add, test NAME, fetch NAME, send NAME."

    def add_arguments(self, parser: ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        listing = sub.add_parser("list", help="List mailboxes and their last outcome.")
        listing.add_argument("--json", action="store_true")

        add = sub.add_parser(
            "add",
            help="Add a mailbox (the password comes from a file or "
            "stdin, never from the command line).",
        )
        add.add_argument("--name", required=True)
        add.add_argument("--direction", choices=Mailbox.Direction.values, default="incoming")
        add.add_argument("--protocol", choices=Mailbox.Protocol.values, default="imap")
        add.add_argument("--host", required=True)
        add.add_argument("--port", type=int, required=True)
        add.add_argument("--security", choices=Mailbox.Security.values, default="ssl")
        add.add_argument("--username", required=True)
        add.add_argument("--auth-method", choices=Mailbox.AuthMethod.values, default="oauth2")
        add.add_argument(
            "--password-file",
            type=FileType("r"),
            metavar="FILE",
            help="read the password from FILE ('-' for stdin)",
        )
        add.add_argument("--oauth-client", metavar="NAME")
        add.add_argument("--grant", type=int, metavar="ID")
        add.add_argument("--sasl-mechanism", choices=Mailbox.Mechanism.values, default="xoauth2")
        add.add_argument("--smtp-username", default="")
        add.add_argument("--folder", default="INBOX")
        add.add_argument("--post-fetch-action", default="keep")
        add.add_argument("--poll-interval", type=int, default=300)
        add.add_argument("--disabled", action="store_true")

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

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        if action == "list":
            return self._list(as_json=options["json"])
        if action == "add":
            return self._add(options)
        mailbox = self._mailbox(options["name"])
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
        rows: list[dict[str, Any]] = [
            {
                "name": m.name,
                "direction": m.direction,
                "protocol": m.protocol,
                "host": m.host,
                "port": m.port,
                "username": m.username,
                "auth_method": m.auth_method,
                "oauth_client": m.oauth_client.name if m.oauth_client else None,
                "enabled": m.enabled,
                "last_fetch_at": m.last_fetch_at.isoformat() if m.last_fetch_at else None,
                "last_error": m.last_error,
            }
            for m in Mailbox.objects.select_related("oauth_client")
        ]
        if as_json:
            self.stdout.write(json.dumps(rows, indent=2))
            return
        for r in rows:
            error = str(r["last_error"] or "")
            state = "error: " + error[:60] if error else "ok"
            self.stdout.write(f"{r['name']:25} {r['protocol']:5} {r['username']:30} {state}")

    def _add(self, o: dict[str, Any]) -> None:
        client = None
        if o["oauth_client"]:
            client = OAuthClient.objects.filter(name=o["oauth_client"]).first()
            if client is None:
                raise CommandError(f"No OAuth client named {o['oauth_client']!r}.")
        grant = Grant.objects.filter(pk=o["grant"]).first() if o["grant"] else None
        if o["grant"] and grant is None:
            raise CommandError(f"No grant {o['grant']}.")
        password = o["password_file"].read().rstrip("\r\n") if o["password_file"] else None
        mailbox = Mailbox(
            name=o["name"],
            direction=o["direction"],
            protocol=o["protocol"],
            host=o["host"],
            port=o["port"],
            security=o["security"],
            username=o["username"],
            auth_method=o["auth_method"],
            oauth_client=client,
            grant=grant,
            sasl_mechanism=o["sasl_mechanism"],
            smtp_username=o["smtp_username"],
            folder=o["folder"],
            post_fetch_action=o["post_fetch_action"],
            poll_interval=o["poll_interval"],
            enabled=not o["disabled"],
        )
        try:
            mailbox.full_clean(exclude=["password"])
            mailbox_save(mailbox=mailbox, password=password)
        except (ValidationError, MailboxError) as exc:
            raise CommandError(_validation_text(exc)) from None
        self.stdout.write(f"Added mailbox {mailbox.name}.")

    def _test(self, mailbox: Mailbox, *, as_json: bool) -> None:
        result = mailbox_test(mailbox=mailbox)
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
            result = mailbox_fetch(mailbox=mailbox, progress=progress)
        except MailboxError as exc:
            progress.done()
            raise CommandError(exc.message) from None
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
        recipients = [*o["to"], *o["cc"], *o["bcc"]]
        if o["raw"]:
            raw = o["raw"].read()
        else:
            attachments = []
            for name in o["attach"]:
                path = Path(name)
                if not path.is_file():
                    raise CommandError(f"No such file to attach: {name}")
                kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
                attachments.append(Attachment(path.name, path.read_bytes(), kind))
            raw = compose(
                sender=o["sender"] or mailbox.username,
                to=o["to"],
                cc=o["cc"],
                subject=o["subject"],
                text=o["text"],
                html=o["html_file"].read() if o["html_file"] else "",
                attachments=attachments,
            ).as_bytes()
        try:
            result = mailbox_send(
                mailbox=mailbox, recipients=recipients, raw=raw, sender=o["sender"]
            )
        except MailboxError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(f"Sent to {', '.join(result.accepted)}: {result.reply}")
        for recipient, reason in result.refused.items():
            self.stderr.write(f"refused {recipient}: {reason}")


def _validation_text(exc: Exception) -> str:
    if isinstance(exc, ValidationError) and hasattr(exc, "message_dict"):
        return "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
    return getattr(exc, "message", str(exc))
