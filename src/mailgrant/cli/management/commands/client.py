import json
from argparse import ArgumentParser, ArgumentTypeError
from datetime import datetime
from typing import Any
from urllib.parse import quote

from django.core.management.base import CommandError

from mailgrant.cli.management.commands.apikey import _moment
from mailgrant.cli.output import (
    client_named,
    grant_numbered,
    grant_row,
    refreshed_text,
    write_authorization,
    write_grants,
    write_token,
)
from mailgrant.cli.support import (
    AdminCommand,
    add_bool_argument,
    add_secret_arguments,
    confirm,
    flag_of,
    help_of,
    human,
    json_text,
    read_secret,
    seconds,
)
from mailgrant.common.audit import CLI
from mailgrant.common.http import PROXY_PASSWORD_MASK, proxy_password_of, proxy_with_password
from mailgrant.oauth.models import OAuthClient
from mailgrant.oauth.selectors import (
    OAUTH_CLIENT_FIELDS,
    grant_default_for,
    grant_list,
    oauth_client_list,
)
from mailgrant.oauth.services.authorization import authorization_start
from mailgrant.oauth.services.clients import (
    oauth_client_delete,
    oauth_client_set_status,
)
from mailgrant.oauth.services.tokens import access_token_issue, grant_refresh
from mailgrant.providers import PROVIDERS
from mailgrant.sso.models import SignIn
from mailgrant.sso.selectors import SIGN_IN_FIELDS, client_public
from mailgrant.sso.services.clients import client_create, client_update

# A flag per field of the client form, named after it (client_id -> --client-id): the fields
# the API and this command show (the client's, then its sign-in settings').
CHOICES = {
    "provider": list(PROVIDERS),
    "type": OAuthClient.Type.values,
    "status": OAuthClient.Status.values,
    "user_data_source": SignIn.UserDataSource.values,
}
FIELDS = [*OAUTH_CLIENT_FIELDS, *SIGN_IN_FIELDS]
NOT_TEXT = {
    "name",
    "client_id",
    *CHOICES,
    "verify_ssl",
    "user_fields",
    "email_verified_required",
    "allowed_organizations",
    "secret_expires_at",
}
TEXT_FIELDS = [f for f in FIELDS if f not in NOT_TEXT]


def _help(field: str) -> str:
    return help_of(OAuthClient if field in OAUTH_CLIENT_FIELDS else SignIn, field)


class Command(AdminCommand):
    help = (
        "OAuth clients: list, show, add, update, delete, enable, disable, validate, refresh, "
        "token, grants. The client secret is read from a file or stdin, never from argv."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        listing = sub.add_parser("list", help="List clients and their default grant's state.")
        for field, choices in CHOICES.items():
            if field != "user_data_source":
                listing.add_argument(flag_of(field), choices=choices)
        listing.add_argument("--json", action="store_true")

        show = sub.add_parser("show", help="Show a client (never its secret) and its grants.")
        show.add_argument("name")
        show.add_argument("--json", action="store_true")

        add = sub.add_parser("add", help="Add a client; empty fields use the provider's preset.")
        self._field_arguments(add, creating=True)
        update = sub.add_parser(
            "update",
            help="Change the fields given; the others stay.",
            description="Change the fields given; the others stay. Changing where the client "
            "sends its secrets (an endpoint, the issuer, tenant, provider or proxy, or "
            "--no-verify-ssl) clears the stored client secret unless the same update gives it "
            "again (--client-secret-file/--client-secret-stdin), and every grant of the client "
            "must be validated again.",
        )
        update.add_argument("current_name", metavar="NAME")
        self._field_arguments(update, creating=False)

        delete = sub.add_parser("delete", help="Delete a client and its grants.")
        delete.add_argument("name")
        delete.add_argument("--yes", action="store_true", help="do not ask")
        for action in ("enable", "disable"):
            sub.add_parser(action, help=f"{action.capitalize()} a client.").add_argument("name")

        validate = sub.add_parser(
            "validate",
            help="Print the URL to authorize the client at its provider, in any browser.",
        )
        validate.add_argument("name")
        validate.add_argument(
            "--login-hint", default="", help="the account to sign in as (another is refused)"
        )
        validate.add_argument(
            "--grant",
            type=int,
            metavar="ID",
            help="authorize this grant again (default: the client's default grant)",
        )
        validate.add_argument(
            "--wait",
            action="store_true",
            help="wait for the sign-in; exit 0 when authorized, 1 when refused or expired",
        )

        refresh = sub.add_parser("refresh", help="Refresh the client's default grant now.")
        refresh.add_argument("name")
        token = sub.add_parser("token", help="Print a valid access token (refreshed if needed).")
        token.add_argument("name")
        token.add_argument(
            "--min-valid",
            type=seconds,
            default=0,
            metavar="SECONDS",
            help="valid for at least this long (when the provider allows)",
        )
        token.add_argument("--grant", type=int, metavar="ID", help="default: the default grant")
        token.add_argument("--json", action="store_true")
        grants = sub.add_parser("grants", help="List the client's grants.")
        grants.add_argument("name")
        grants.add_argument("--json", action="store_true")

    def _field_arguments(self, parser: ArgumentParser, *, creating: bool) -> None:
        parser.add_argument(
            "--name", required=creating, help=None if creating else "rename the client"
        )
        parser.add_argument("--provider", required=creating, choices=CHOICES["provider"])
        parser.add_argument("--client-id", required=creating)
        for field in ("type", "status", "user_data_source"):
            parser.add_argument(flag_of(field), choices=CHOICES[field], help=_help(field))
        for field in TEXT_FIELDS:
            parser.add_argument(flag_of(field), help=_help(field), metavar="TEXT")
        add_bool_argument(parser, "verify-ssl", "check the provider's TLS certificate")
        parser.add_argument(
            "--secret-expires",
            type=_expiry,
            metavar="DATE",
            help="when the client secret expires at the provider (ISO 8601: 2027-01-31, "
            "midnight in MAILGRANT_TIME_ZONE, or 2027-01-31T12:00+01:00; '' for unknown): "
            "health warning 30 days before, failing once passed",
        )
        parser.add_argument("--user-fields", metavar="JSON", help=_help("user_fields"))
        add_bool_argument(parser, "email-verified-required", _help("email_verified_required"))
        parser.add_argument(
            "--allowed-organization",
            dest="allowed_organizations",
            action="append",
            metavar="NAME",
            help=_help("allowed_organizations")
            + " Repeat for several; --allowed-organization '' clears them.",
        )
        parser.add_argument(
            "--related-ldap",
            dest="related_ldaps",
            action="append",
            metavar="NAME",
            help="an LDAP directory whose users sign-ins link to (repeat for several; "
            "--related-ldap '' clears them)",
        )
        add_secret_arguments(parser, "client-secret", "client secret")
        add_secret_arguments(
            parser, "proxy-password", "proxy's password (its user name goes in --proxy, user@host)"
        )
        parser.add_argument("--json", action="store_true")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        getattr(self, f"_{action}")(options)

    # --- reading -------------------------------------------------------------------------------

    def _list(self, o: dict[str, Any]) -> None:
        rows = []
        for client in oauth_client_list(provider=o["provider"], type=o["type"], status=o["status"]):
            grant = grant_default_for(client=client)
            rows.append(
                {
                    "id": client.pk,
                    "name": client.name,
                    "provider": client.provider,
                    "type": client.type,
                    "status": client.status,
                    "health": client.health,
                    "secret_expires_at": client.secret_expires_at,
                    "grant_state": grant.state if grant else "unauthorized",
                    "account": grant.account if grant else "",
                    "expires_at": grant.expires_at if grant else None,
                }
            )
        if o["json"]:
            self.stdout.write(json_text(rows))
            return
        for row in rows:
            self.stdout.write(
                f"{row['name']:30} {row['provider']:8} {row['type']:8} "
                f"{row['status']:9} {row['health']:22} {row['grant_state']:25} {row['account']}"
                + (
                    f" (secret expires {row['secret_expires_at']:%Y-%m-%d})"
                    if row["secret_expires_at"]
                    else ""
                )
            )

    def _show(self, o: dict[str, Any]) -> None:
        client = client_named(o["name"])
        data = {
            **client_public(client=client),
            "health": client.health,
            "health_reason": client.health_reason,
            "health_hint": client.health_hint,
            "grants": [grant_row(g) for g in grant_list(client=client)],
        }
        if o["json"]:
            self.stdout.write(json_text(data))
            return
        for key, value in data.items():
            if key != "grants":
                self.stdout.write(f"{key + ':':24} {human(value)}")
        grants = grant_list(client=client)
        self.stdout.write("grants:" if grants else f"{'grants:':24} - (run validate)")
        write_grants(self, grants, as_json=False)

    def _grants(self, o: dict[str, Any]) -> None:
        write_grants(self, grant_list(client=client_named(o["name"])), as_json=o["json"])

    # --- writing -------------------------------------------------------------------------------

    def _given_fields(self, o: dict[str, Any], client: OAuthClient | None = None) -> dict[str, Any]:
        data = {f: o[f] for f in FIELDS if o.get(f) is not None}
        if o.get("secret_expires") is not None:
            data["secret_expires_at"] = o["secret_expires"] or None
        if "user_fields" in data:
            data["user_fields"] = _user_fields(data["user_fields"])
        if "allowed_organizations" in data:
            data["allowed_organizations"] = [n for n in data["allowed_organizations"] if n]
        if proxy_password_of(data.get("proxy", "")) not in ("", PROXY_PASSWORD_MASK):
            raise CommandError(
                "A proxy password in --proxy would show in the process list: give the user in "
                "--proxy (user@host:port) and the password with --proxy-password-file or "
                "--proxy-password-stdin."
            )
        password = read_secret(
            path=o["proxy_password_file"],
            from_stdin=o["proxy_password_stdin"],
            what="proxy password",
        )
        if password is not None:
            proxy = data.get("proxy", client.proxy if client else "")
            with_password = proxy_with_password(proxy, quote(password, safe=""))
            if with_password == proxy.strip():
                raise CommandError("A proxy password needs a user in --proxy (user@host:port).")
            data["proxy"] = with_password
        return data

    def _secret(self, o: dict[str, Any]) -> str | None:
        return read_secret(
            path=o["client_secret_file"], from_stdin=o["client_secret_stdin"], what="client secret"
        )

    def _add(self, o: dict[str, Any]) -> None:
        values = self._given_fields(o)
        if o["related_ldaps"] is not None:
            values["related_ldaps"] = o["related_ldaps"]
        client = client_create(values=values, client_secret=self._secret(o), actor=CLI)
        self._saved(client, "Added", as_json=o["json"])

    def _update(self, o: dict[str, Any]) -> None:
        client = client_named(o["current_name"])
        values = self._given_fields(o, client)
        if o["related_ldaps"] is not None:
            values["related_ldaps"] = o["related_ldaps"]
        secret = self._secret(o)
        if not values and secret is None:
            raise CommandError("Nothing to change: give the flags of the fields to change.")
        client_update(client=client, values=values, client_secret=secret, actor=CLI)
        self._saved(client, "Updated", as_json=o["json"])

    def _saved(self, client: OAuthClient, verb: str, *, as_json: bool) -> None:
        data = client_public(client=client)
        if as_json:
            self.stdout.write(json_text({**data, "notice": client.save_notice}))
            return
        self.stdout.write(f"{verb} OAuth client {client.name} (id {client.pk}).")
        self.stdout.write(f"Redirect URI to register at the provider: {data['redirect_uri']}")
        if client.save_notice:
            self.stdout.write(client.save_notice)

    def _delete(self, o: dict[str, Any]) -> None:
        client = client_named(o["name"])
        count = grant_list(client=client).count()
        confirm(f"Delete OAuth client {client.name} and its {count} grant(s)?", yes=o["yes"])
        oauth_client_delete(client=client, actor=CLI)
        self.stdout.write(f"Deleted OAuth client {client.name}.")

    def _enable(self, o: dict[str, Any]) -> None:
        client = oauth_client_set_status(
            client=client_named(o["name"]), status="enabled", actor=CLI
        )
        self.stdout.write(f"Enabled {client.name}.")

    def _disable(self, o: dict[str, Any]) -> None:
        client = oauth_client_set_status(
            client=client_named(o["name"]), status="disabled", actor=CLI
        )
        self.stdout.write(f"Disabled {client.name}.")

    # --- authorizing and tokens ----------------------------------------------------------------

    def _validate(self, o: dict[str, Any]) -> None:
        client = client_named(o["name"])
        grant = grant_numbered(o["grant"], client=client) if o["grant"] is not None else None
        started = authorization_start(
            client=client, purpose="cli", grant=grant, login_hint=o["login_hint"], actor=CLI
        )
        write_authorization(self, started, wait=o["wait"])

    def _refresh(self, o: dict[str, Any]) -> None:
        client = client_named(o["name"])
        grant = grant_default_for(client=client)
        if grant is None:
            raise CommandError(f"Client {client.name} is not authorized yet: run validate.")
        self.stdout.write(refreshed_text(grant_refresh(grant=grant, actor=CLI)))

    def _token(self, o: dict[str, Any]) -> None:
        client = client_named(o["name"])
        if o["grant"] is not None:
            grant = grant_numbered(o["grant"], client=client)
        else:
            default = grant_default_for(client=client)
            if default is None:
                raise CommandError(f"Client {client.name} is not authorized yet: run validate.")
            grant = default
        tokens = access_token_issue(grant_id=grant.pk, min_valid_seconds=o["min_valid"], actor=CLI)
        write_token(self, tokens, as_json=o["json"])


def _user_fields(text: str) -> dict[str, str]:
    try:
        value = json.loads(text)
    except ValueError:
        raise CommandError(
            'Invalid: user_fields: not JSON; expected an object such as {"email": "email"}.'
        ) from None
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise CommandError(
            "Invalid: user_fields: expected a JSON object of user field to claim name."
        )
    return value


def _expiry(text: str) -> datetime | str:
    """--secret-expires: a moment, or "" for none."""
    if not text.strip():
        return ""
    try:
        return _moment(text)
    except ArgumentTypeError:
        raise ArgumentTypeError(
            f"not an ISO 8601 date: {text!r} (e.g. 2027-01-31, or '' for unknown)"
        ) from None
