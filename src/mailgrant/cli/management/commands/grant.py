from argparse import ArgumentParser
from typing import Any

from mailgrant.cli.output import (
    client_named,
    grant_numbered,
    refreshed_text,
    write_grant,
    write_grants,
    write_token,
)
from mailgrant.cli.support import AdminCommand, confirm, seconds
from mailgrant.common.audit import CLI
from mailgrant.oauth.selectors import grant_list
from mailgrant.oauth.services.grants import grant_delete, grant_set_default
from mailgrant.oauth.services.tokens import access_token_issue, grant_refresh


class Command(AdminCommand):
    help = (
        "Grants (one account's authorization of a client): list, show, refresh, token, "
        "set-default, delete. Authorize a new one with `mailgrant client validate`."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        listing = sub.add_parser("list", help="List grants (never their tokens).")
        listing.add_argument("--client", metavar="NAME", help="only this client's grants")
        listing.add_argument("--json", action="store_true")
        show = sub.add_parser("show", help="Show a grant (never its tokens).")
        show.add_argument("id", type=int)
        show.add_argument("--json", action="store_true")
        refresh = sub.add_parser("refresh", help="Refresh the grant's tokens now.")
        refresh.add_argument("id", type=int)
        token = sub.add_parser("token", help="Print a valid access token (refreshed if needed).")
        token.add_argument("id", type=int)
        token.add_argument(
            "--min-valid",
            type=seconds,
            default=0,
            metavar="SECONDS",
            help="valid for at least this long (when the provider allows)",
        )
        token.add_argument(
            "--json",
            action="store_true",
            help="access_token, token_type, expires_at, scope (as the API's token broker)",
        )
        default = sub.add_parser(
            "set-default", help="Make this the grant its client uses where none is named."
        )
        default.add_argument("id", type=int)
        delete = sub.add_parser("delete", help="Forget the grant and its tokens.")
        delete.add_argument("id", type=int)
        delete.add_argument("--yes", action="store_true", help="do not ask")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        if action == "list":
            client = client_named(options["client"]) if options["client"] else None
            write_grants(self, grant_list(client=client), as_json=options["json"])
            return
        grant = grant_numbered(options["id"])
        if action == "show":
            write_grant(self, grant, as_json=options["json"])
        elif action == "refresh":
            self.stdout.write(refreshed_text(grant_refresh(grant=grant, actor=CLI)))
        elif action == "token":
            tokens = access_token_issue(
                grant_id=grant.pk, min_valid_seconds=options["min_valid"], actor=CLI
            )
            write_token(self, tokens, as_json=options["json"])
        elif action == "set-default":
            grant = grant_set_default(grant=grant, actor=CLI)
            self.stdout.write(
                f"Grant {grant.pk} ({grant.account or '-'}) is now the default of "
                f"{grant.client.name}."
            )
        else:
            confirm(f"Delete grant {grant.pk} ({grant}) and its tokens?", yes=options["yes"])
            grant_delete(grant=grant, actor=CLI)
            self.stdout.write(f"Deleted grant {options['id']} ({grant}).")
