import signal
import threading
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand

from mailgrant.directory.services.sync import SyncResult
from mailgrant.mailboxes.jobs import PollOutcome
from mailgrant.worker.loop import run, run_once


class Command(BaseCommand):
    help = (
        "Run the background jobs (fetch incoming mailboxes and sync LDAP directories on their "
        "intervals, purge old authorizations); `mailgrant serve` runs this too."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--once", action="store_true", help="one round, then exit")
        parser.add_argument("--tick", type=float, default=5.0, help="seconds between rounds")

    def handle(self, *args: Any, once: bool, tick: float, **options: Any) -> None:
        if once:
            for name, result in run_once().items():
                for line in _lines(result):
                    self.stdout.write(line)
                if isinstance(result, Exception):
                    self.stderr.write(f"{name} failed: {type(result).__name__}: {result}")
            return
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        run(stop, tick=tick)


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
