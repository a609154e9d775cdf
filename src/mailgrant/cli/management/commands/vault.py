from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError

from mailgrant.cli.support import AdminCommand
from mailgrant.common.audit import CLI
from mailgrant.common.crypto import VaultError, add_key_to_file, generate_key, reset_vault
from mailgrant.common.services import vault_rotate


class Command(AdminCommand):
    help = "Vault keys: rotate (re-encrypt everything under the newest key), generate-key."

    def add_arguments(self, parser: ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        rotate = sub.add_parser(
            "rotate", help="Re-encrypt every stored secret under the newest key."
        )
        rotate.add_argument(
            "--new-key",
            action="store_true",
            help="First put a fresh key at the head of the key file "
            "(not with MAILGRANT_VAULT_KEYS: add it there yourself).",
        )
        sub.add_parser("generate-key", help="Print a new key for MAILGRANT_VAULT_KEYS.")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        if action == "generate-key":
            self.stdout.write(generate_key())
            return
        try:
            if options["new_key"]:
                if settings.MAILGRANT_VAULT_KEYS:
                    raise CommandError(
                        "Keys come from MAILGRANT_VAULT_KEYS: put the new key "
                        "first there, then run `mailgrant vault rotate`."
                    )
                add_key_to_file(Path(settings.MAILGRANT_VAULT_KEY_FILE))
                reset_vault()
            result = vault_rotate(actor=CLI)
        except VaultError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            f"Re-encrypted {result.rotated} value(s); "
            f"{result.already_current} already under the newest key."
        )
