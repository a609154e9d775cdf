import logging
import os
import signal
import sys
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from mailgrant.directory.services.sync import SyncResult
from mailgrant.mailboxes.jobs import PollOutcome
from mailgrant.worker.loop import run_once, runtime_build

log = logging.getLogger(__name__)


class Command(BaseCommand):
    help = (
        "Run the background jobs: fetch incoming mailboxes and sync LDAP directories on their "
        "intervals, purge old authorizations. Any number of workers share the work through "
        "the database; `mailgrant serve` runs one too."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--once", action="store_true", help="one round, then exit")
        parser.add_argument(
            "--tick", type=float, default=5.0, help="seconds between rounds (default 5)"
        )
        parser.add_argument(
            "--concurrency",
            type=int,
            default=None,
            help="items worked on at once (default MAILGRANT_WORKER_CONCURRENCY, else 8)",
        )

    def handle(
        self, *args: Any, once: bool, tick: float, concurrency: int | None, **options: Any
    ) -> None:
        if concurrency is not None and concurrency < 1:
            raise CommandError("--concurrency must be at least 1")
        if tick <= 0:
            raise CommandError("--tick must be more than 0 seconds")
        if once:
            for name, result in run_once().items():
                for line in _lines(result):
                    self.stdout.write(line)
                if isinstance(result, Exception):
                    self.stderr.write(f"{name} failed: {type(result).__name__}: {result}")
            return
        runtime = runtime_build(concurrency=concurrency, tick=tick)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: runtime.stop())
        runtime.run()
        if runtime.running():
            # Abandoned work (crash-safe) must not hold the exit: the pool's threads are
            # joined at interpreter exit otherwise.
            logging.shutdown()
            sys.stdout.flush()
            os._exit(0)


def _lines(result: Any) -> list[str]:
    if not isinstance(result, list):
        return []
    lines = []
    for item in result:
        if isinstance(item, PollOutcome):
            lines.append(f"{item.mailbox}: {item.error or f'{item.fetched} new message(s)'}")
        elif isinstance(item, SyncResult):
            status = item.summary if item.ok else f"failed: {item.error}"
            lines.append(f"LDAP directory {item.directory}: {status}")
    return lines
