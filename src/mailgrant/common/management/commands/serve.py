import os
import sys
from argparse import ArgumentParser
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Serve mailgrant with granian (WSGI) on MAILGRANT_LISTEN."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--listen",
            default=settings.MAILGRANT_LISTEN,
            help="host:port (default MAILGRANT_LISTEN, else 127.0.0.1:8000)",
        )
        parser.add_argument("--workers", type=int, default=2)
        parser.add_argument("--blocking-threads", type=int, default=4)

    def handle(
        self, *args: Any, listen: str, workers: int, blocking_threads: int, **options: Any
    ) -> None:
        host, sep, port = listen.rpartition(":")
        if not sep or not port.isdigit() or not host:
            raise CommandError(f"--listen must be host:port, got {listen!r}")
        self.stdout.write(
            f"mailgrant serving on http://{listen} (public URL {settings.MAILGRANT_BASE_URL})"
        )
        self.stdout.flush()
        argv = [
            sys.executable,
            "-m",
            "granian",
            "--interface",
            "wsgi",
            "--host",
            host.strip("[]"),
            "--port",
            port,
            "--workers",
            str(workers),
            "--blocking-threads",
            str(blocking_threads),
            "--no-ws",
            "mailgrant.config.wsgi:application",
        ]
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mailgrant.config.settings")
        # Replace this process: signals (Ctrl-C, SIGTERM) go straight to granian.
        os.execv(sys.executable, argv)  # noqa: S606
