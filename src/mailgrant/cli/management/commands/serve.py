import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
from argparse import SUPPRESS, ArgumentParser
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

WORKERS_KILL_TIMEOUT = 5


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
        parser.add_argument(
            "--no-worker",
            action="store_true",
            help="run no background worker beside the web server (run `mailgrant worker` "
            "elsewhere: on another machine, or as its own service)",
        )
        parser.add_argument("--no-poll", dest="no_worker", action="store_true", help=SUPPRESS)

    def handle(
        self,
        *args: Any,
        listen: str,
        workers: int,
        blocking_threads: int,
        no_worker: bool,
        **options: Any,
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
            # A worker that missed the stop (a SIGTERM that lands while it is still booting
            # is taken by the handler it inherited, and granian then joins it forever) is
            # killed after this many seconds; whatever it was doing is crash-safe.
            "--workers-kill-timeout",
            str(WORKERS_KILL_TIMEOUT),
            "mailgrant.config.wsgi:application",
        ]
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mailgrant.config.settings")
        if not no_worker:
            _start_worker()
        # Replace this process: signals (Ctrl-C, SIGTERM) go straight to granian.
        os.execv(sys.executable, argv)  # noqa: S606


def _start_worker() -> None:
    """The background worker, as a child that dies with this process (which becomes
    granian)."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)

    def die_with_parent() -> None:
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG

    subprocess.Popen(
        [sys.executable, "-m", "mailgrant.cli", "worker"],
        preexec_fn=die_with_parent,
        stdin=subprocess.DEVNULL,
    )
