"""The `mailgrant` command: Django's management commands plus mailgrant's own (every one in
cli/management/commands), with the settings module already chosen."""

import os
import sys


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mailgrant.config.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(["mailgrant", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    main()
