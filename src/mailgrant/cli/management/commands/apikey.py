import json
from argparse import ArgumentParser, ArgumentTypeError
from datetime import datetime, timedelta
from typing import Any

from django.core.management.base import CommandError
from django.utils import timezone

from mailgrant.api.models import ApiKey
from mailgrant.api.services import apikey_create, apikey_revoke
from mailgrant.cli.support import AdminCommand
from mailgrant.common.audit import CLI


class Command(AdminCommand):
    help = "API keys: create (the key is printed once, optionally expiring), list, revoke."

    def add_arguments(self, parser: ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="Create a key; it is printed once, alone.")
        create.add_argument("--name", required=True)
        create.add_argument(
            "--scope", action="append", required=True, choices=ApiKey.Scope.values, dest="scopes"
        )
        expiry = create.add_mutually_exclusive_group()
        expiry.add_argument(
            "--expires-in", type=_days, metavar="DAYS", help="refuse the key DAYS days from now"
        )
        expiry.add_argument(
            "--expires",
            type=_moment,
            metavar="DATE",
            help="refuse the key from DATE on (ISO 8601: 2027-01-31, midnight in "
            "MAILGRANT_TIME_ZONE, or 2027-01-31T12:00+01:00)",
        )
        listing = sub.add_parser("list")
        listing.add_argument("--json", action="store_true")
        revoke = sub.add_parser("revoke")
        revoke.add_argument("name")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        if action == "create":
            days = options["expires_in"]
            expires_at = timezone.now() + timedelta(days=days) if days else options["expires"]
            _, plaintext = apikey_create(
                name=options["name"], scopes=options["scopes"], expires_at=expires_at, actor=CLI
            )
            self.stdout.write(plaintext)  # alone on stdout: `KEY=$(mailgrant apikey create ...)`
            return
        if action == "list":
            rows = [
                {
                    "name": k.name,
                    "prefix": k.prefix,
                    "scopes": k.scopes,
                    "created_at": k.created_at.isoformat(),
                    "last_used_at": k.last_used_at.isoformat() if k.last_used_at else None,
                    "expires_at": k.expires_at.isoformat() if k.expires_at else None,
                    "revoked": k.revoked_at is not None,
                    "expired": k.is_expired,
                }
                for k in ApiKey.objects.all()
            ]
            if options["json"]:
                self.stdout.write(json.dumps(rows, indent=2))
            else:
                for r in rows:
                    state = (
                        "revoked"
                        if r["revoked"]
                        else "expired"
                        if r["expired"]
                        else f"last used {r['last_used_at'] or '-'}"
                        + (f", expires {r['expires_at']}" if r["expires_at"] else "")
                    )
                    self.stdout.write(
                        f"{r['name']:25} {r['prefix']}… {','.join(r['scopes']):20} {state}"
                    )
            return
        key = ApiKey.objects.filter(name=options["name"]).first()
        if key is None:
            raise CommandError(f"No API key named {options['name']!r}.")
        apikey_revoke(key=key, actor=CLI)
        self.stdout.write(f"Revoked {key.name}.")


def _days(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ArgumentTypeError(f"not a whole number of days: {text!r}") from None
    if value < 1:
        raise ArgumentTypeError(f"must be at least 1 day, not {value}")
    return value


def _moment(text: str) -> datetime:
    """An ISO 8601 date or date and time; without an offset, in MAILGRANT_TIME_ZONE."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ArgumentTypeError(f"not an ISO 8601 date: {text!r}") from None
    return value if timezone.is_aware(value) else timezone.make_aware(value)
