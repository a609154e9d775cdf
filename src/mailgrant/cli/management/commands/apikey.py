import json
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import CommandError

from mailgrant.api.models import ApiKey
from mailgrant.api.services import apikey_create, apikey_revoke
from mailgrant.cli.support import AdminCommand
from mailgrant.common.audit import CLI


class Command(AdminCommand):
    help = "API keys: create (the key is printed once), list, revoke."

    def add_arguments(self, parser: ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="Create a key; it is printed once, alone.")
        create.add_argument("--name", required=True)
        create.add_argument(
            "--scope", action="append", required=True, choices=ApiKey.Scope.values, dest="scopes"
        )
        listing = sub.add_parser("list")
        listing.add_argument("--json", action="store_true")
        revoke = sub.add_parser("revoke")
        revoke.add_argument("name")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        if action == "create":
            _, plaintext = apikey_create(name=options["name"], scopes=options["scopes"], actor=CLI)
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
                    "revoked": not k.is_active,
                }
                for k in ApiKey.objects.all()
            ]
            if options["json"]:
                self.stdout.write(json.dumps(rows, indent=2))
            else:
                for r in rows:
                    state = "revoked" if r["revoked"] else f"last used {r['last_used_at'] or '-'}"
                    self.stdout.write(
                        f"{r['name']:25} {r['prefix']}… {','.join(r['scopes']):20} {state}"
                    )
            return
        key = ApiKey.objects.filter(name=options["name"]).first()
        if key is None:
            raise CommandError(f"No API key named {options['name']!r}.")
        apikey_revoke(key=key, actor=CLI)
        self.stdout.write(f"Revoked {key.name}.")
