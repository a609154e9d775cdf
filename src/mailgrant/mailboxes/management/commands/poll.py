import signal
import threading
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand

from mailgrant.mailboxes.poller import poll_once, run, sync_directories_once


class Command(BaseCommand):
    help = (
        "Fetch enabled incoming mailboxes and sync LDAP directories on their intervals "
        "(`mailgrant serve` runs this too)."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--once", action="store_true", help="one round, then exit")
        parser.add_argument("--tick", type=float, default=5.0, help="seconds between rounds")

    def handle(self, *args: Any, once: bool, tick: float, **options: Any) -> None:
        if once:
            for outcome in poll_once():
                status = outcome.error or f"{outcome.fetched} new message(s)"
                self.stdout.write(f"{outcome.mailbox}: {status}")
            for result in sync_directories_once():
                status = result.summary if result.ok else f"failed: {result.error}"
                self.stdout.write(f"LDAP directory {result.directory}: {status}")
            return
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        run(stop, tick=tick)
