"""The `mailgrant` command: Django's management commands plus mailgrant's own (every one in
cli/management/commands), with the settings module already chosen."""

import os
import sys


def main(argv: list[str] | None = None) -> None:
    # Everything mailgrant creates is its user's alone (the database, its -wal/-shm, the
    # store, exports); `serve` passes this on to granian and the poller.
    os.umask(0o077)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mailgrant.config.settings")
    from mailgrant.common.metrics_dir import metrics_dir_prepare

    metrics_dir_prepare()  # before prometheus_client is imported: its processes count together
    from django.core.management import execute_from_command_line

    execute_from_command_line(["mailgrant", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    main()
