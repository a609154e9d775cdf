"""The `mailgrant` command: Django's management commands plus mailgrant's own (every one in
cli/management/commands), with the settings module already chosen."""

import os
import sys

# The commands that serve or do the background work: what they count is what /metrics shows.
# Any other command (a one-off fetch, `mailgrant status` from cron) counts in its own memory
# only, so short-lived processes leave no files behind in the shared folder.
COUNTED = frozenset({"serve", "worker", "poll"})


def main(argv: list[str] | None = None) -> None:
    # Everything mailgrant creates is its user's alone (the database, its -wal/-shm, the
    # store, exports); `serve` passes this on to granian and the poller.
    os.umask(0o077)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mailgrant.config.settings")
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] in COUNTED:
        from mailgrant.common.metrics_dir import metrics_dir_prepare

        metrics_dir_prepare()  # before prometheus_client is imported (it reads it at import)
    from django.core.management import execute_from_command_line

    try:
        execute_from_command_line(["mailgrant", *args])
    except BrokenPipeError:
        # The reader stopped early (`mailgrant status | head -1`): no traceback for that.
        # What is still buffered goes nowhere, so the interpreter's own flush does not fail.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)


if __name__ == "__main__":
    main()
