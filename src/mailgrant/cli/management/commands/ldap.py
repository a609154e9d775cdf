"""`mailgrant ldap ...`: list, add, update, test and sync LDAP directories.

Exit codes as every command's: 0 done, 1 failed (an unknown directory, a refused value, a
directory that could not be reached or read), 2 a usage error argparse found. The bind password
comes from a file or stdin, never from the command line (where `ps` and shell history would
show it)."""

import json
from argparse import ArgumentParser, BooleanOptionalAction
from pathlib import Path
from typing import Any

from django.core.management.base import CommandError

from mailgrant.cli.support import AdminCommand, add_secret_arguments, read_secret
from mailgrant.common.audit import CLI
from mailgrant.directory.models import LdapDirectory, default_attribute_map
from mailgrant.directory.selectors import (
    USER_FIELDS,
    ldap_directory_get_by_name,
    ldap_directory_list,
)
from mailgrant.directory.services.directories import ldap_directory_save, ldap_directory_test
from mailgrant.directory.services.sync import ldap_directory_sync


class Command(AdminCommand):
    help = "LDAP directories: list, add, update, test NAME, sync [NAME ...]."

    def add_arguments(self, parser: ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        listing = sub.add_parser("list", help="List directories and their last sync.")
        listing.add_argument("--json", action="store_true")

        sync = sub.add_parser("sync", help="Import and update the people now.")
        sync.add_argument("names", nargs="*", metavar="NAME", help="default: every enabled one")

        test = sub.add_parser("test", help="Bind and count the people a sync would import.")
        test.add_argument("name")

        add = sub.add_parser("add", help="Add a directory.")
        add.add_argument("--name", required=True)
        self._settings_arguments(add, adding=True)
        update = sub.add_parser(
            "update",
            help="Change a directory (only the options given).",
            description="Change a directory (only the options given). A new server URI, "
            "security, CA certificate or --no-verify-ssl needs the bind password given again "
            "in the same update (else the update is refused, changing nothing).",
        )
        update.add_argument("current_name", metavar="NAME")
        update.add_argument("--name", help="rename the directory")
        self._settings_arguments(update, adding=False)

    @staticmethod
    def _settings_arguments(parser: ArgumentParser, *, adding: bool) -> None:
        parser.add_argument("--server-uri", required=adding, metavar="URI")
        parser.add_argument("--base-dn", required=adding, metavar="DN")
        parser.add_argument("--security", choices=LdapDirectory.Security.values)
        parser.add_argument("--verify-ssl", action=BooleanOptionalAction, default=None)
        parser.add_argument(
            "--ca-certificate-file", type=Path, metavar="FILE", help="PEM of the server's CA"
        )
        parser.add_argument("--bind-dn", metavar="DN", help="empty: anonymous bind")
        add_secret_arguments(parser, "bind-password", "bind password")
        parser.add_argument("--user-filter", metavar="FILTER")
        parser.add_argument("--disabled-filter", metavar="FILTER")
        parser.add_argument(
            "--map",
            action="append",
            default=[],
            metavar="FIELD=ATTRIBUTE",
            help=f"user field <- attribute ({', '.join(USER_FIELDS)}); FIELD= unmaps",
        )
        parser.add_argument("--sync-interval", type=int, metavar="MINUTES", help="0: on demand")
        parser.add_argument("--show-in-login", action=BooleanOptionalAction, default=None)
        parser.add_argument("--status", choices=LdapDirectory.Status.values)

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        if action == "list":
            self._list(as_json=options["json"])
        elif action == "sync":
            self._sync(options["names"])
        elif action == "test":
            self._test(self._directory(options["name"]))
        elif action == "add":
            self._save(LdapDirectory(), options, adding=True)
        else:
            self._save(self._directory(options["current_name"]), options, adding=False)

    def _directory(self, name: str) -> LdapDirectory:
        try:
            return ldap_directory_get_by_name(name=name)
        except LdapDirectory.DoesNotExist:
            raise CommandError(f"No LDAP directory named {name!r}.") from None

    def _list(self, *, as_json: bool) -> None:
        rows = [
            {
                "name": d.name,
                "server_uri": d.server_uri,
                "security": d.security,
                "status": d.status,
                "show_in_login": d.show_in_login,
                "bind_dn": d.bind_dn,
                "bind_password_set": bool(d.bind_password),
                "base_dn": d.base_dn,
                "sync_interval": d.sync_interval,
                "last_sync_at": d.last_sync_at.isoformat() if d.last_sync_at else None,
                "last_sync_summary": d.last_sync_summary,
                "last_error": d.last_error,
                "accounts": getattr(d, "account_count", 0),
            }
            for d in ldap_directory_list()
        ]
        if as_json:
            self.stdout.write(json.dumps(rows, indent=2))
            return
        for r in rows:
            error = str(r["last_error"])
            state = f"error: {error[:60]}" if error else r["last_sync_summary"]
            self.stdout.write(
                f"{r['name']:25} {r['status']:8} {r['server_uri']:35} "
                f"{r['accounts']:>6} accounts  {state or 'never synced'}"
            )

    def _sync(self, names: list[str]) -> None:
        if names:
            directories = [self._directory(name) for name in names]
        else:
            directories = list(ldap_directory_list().filter(status=LdapDirectory.Status.ENABLED))
            if not directories:
                self.stdout.write("No enabled LDAP directory.")
                return
        failed = 0
        for directory in directories:
            result = ldap_directory_sync(directory=directory, actor=CLI)
            if result.ok:
                self.stdout.write(f"{directory.name}: {result.details}")
            else:
                failed += 1
                self.stderr.write(f"{directory.name}: sync failed: {result.error}")
        if failed:
            raise CommandError(f"{failed} of {len(directories)} directories failed.")

    def _test(self, directory: LdapDirectory) -> None:
        result = ldap_directory_test(directory=directory)
        if not result.ok:
            raise CommandError(f"{directory.name}: {result.message}")
        self.stdout.write(f"{directory.name}: {result.message}")

    def _save(self, directory: LdapDirectory, o: dict[str, Any], *, adding: bool) -> None:
        password = read_secret(
            path=o["bind_password_file"], from_stdin=o["bind_password_stdin"], what="bind password"
        )
        if o.get("name"):
            directory.name = o["name"]
        for option in ("server_uri", "base_dn", "security", "bind_dn", "user_filter", "status"):
            if o[option] is not None:
                setattr(directory, option, o[option])
        if o["disabled_filter"] is not None:
            directory.disabled_filter = o["disabled_filter"]
        for option in ("verify_ssl", "show_in_login"):
            if o[option] is not None:
                setattr(directory, option, o[option])
        if o["sync_interval"] is not None:
            if o["sync_interval"] < 0:
                raise CommandError("Invalid: sync_interval: minutes, 0 or more.")
            directory.sync_interval = o["sync_interval"]
        if o["ca_certificate_file"] is not None:
            directory.ca_certificate = self._read(o["ca_certificate_file"], "CA certificate")
        if o["map"]:
            mapping = dict(directory.attribute_map or default_attribute_map())
            for item in o["map"]:
                user_field, sep, attribute = item.partition("=")
                if not sep:
                    raise CommandError(
                        f"Invalid: attribute_map: --map {item!r}: use FIELD=ATTRIBUTE."
                    )
                if attribute:
                    mapping[user_field.strip()] = attribute.strip()
                else:
                    mapping.pop(user_field.strip(), None)
            directory.attribute_map = mapping
        ldap_directory_save(directory=directory, bind_password=password, actor=CLI)
        self.stdout.write(f"{'Added' if adding else 'Updated'} LDAP directory {directory.name}.")

    @staticmethod
    def _read(path: Path, what: str) -> str:
        try:
            return path.read_text()
        except OSError as exc:
            raise CommandError(
                f"Cannot read the {what} file {str(path)!r}: {exc.strerror}."
            ) from None
