import json
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from mailgrant.common.crypto import VaultError
from mailgrant.oauth.models import OAuthClient
from mailgrant.oauth.selectors import grant_default_for, oauth_client_get_by_name, oauth_client_list
from mailgrant.oauth.services import GrantUnusable, access_token_for, grant_refresh


class Command(BaseCommand):
    help = "OAuth clients: list, refresh NAME, token NAME."

    def add_arguments(self, parser: ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        listing = sub.add_parser("list", help="List clients and their default grant's state.")
        listing.add_argument("--json", action="store_true")
        refresh = sub.add_parser("refresh", help="Refresh the client's default grant now.")
        refresh.add_argument("name")
        token = sub.add_parser("token", help="Print a valid access token (refreshed if needed).")
        token.add_argument("name")
        token.add_argument(
            "--min-valid",
            type=int,
            default=0,
            metavar="SECONDS",
            help="valid for at least this long (when the provider allows)",
        )

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        if action == "list":
            self._list(as_json=options["json"])
            return
        try:
            client = oauth_client_get_by_name(name=options["name"])
        except OAuthClient.DoesNotExist:
            raise CommandError(f"No OAuth client named {options['name']!r}.") from None
        grant = grant_default_for(client=client)
        if grant is None:
            raise CommandError(f"Client {client.name} is not authorized yet: press Validate.")
        try:
            if action == "refresh":
                grant = grant_refresh(grant=grant)
                self.stdout.write(
                    f"Refreshed {client.name} ({grant.account}); access token "
                    f"valid until {grant.expires_at:%Y-%m-%d %H:%M:%S %Z}."
                    if grant.expires_at
                    else f"Refreshed {client.name}."
                )
            else:
                tokens = access_token_for(grant=grant, min_valid_seconds=options["min_valid"])
                self.stdout.write(tokens.access_token)
        except (GrantUnusable, VaultError) as exc:
            raise CommandError(getattr(exc, "message", str(exc))) from None

    def _list(self, *, as_json: bool) -> None:
        rows = []
        for client in oauth_client_list():
            grant = grant_default_for(client=client)
            rows.append(
                {
                    "name": client.name,
                    "provider": client.provider,
                    "type": client.type,
                    "status": client.status,
                    "grant_state": grant.state if grant else "unauthorized",
                    "account": grant.account if grant else "",
                    "expires_at": grant.expires_at.isoformat()
                    if grant and grant.expires_at
                    else None,
                }
            )
        if as_json:
            self.stdout.write(json.dumps(rows, indent=2))
            return
        for row in rows:
            self.stdout.write(
                f"{row['name']:30} {row['provider']:8} {row['type']:8} "
                f"{row['status']:9} {row['grant_state']:25} {row['account']}"
            )
