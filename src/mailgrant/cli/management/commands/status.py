"""`mailgrant status`: the status overview as a table, or `--json`, for people, cron and Nagios.

Exit codes (Nagios' plugin convention): 0 everything ok, 1 a warning (or no worker alive),
2 something failing or needing re-authorization, 3 the status could not be read (the database
unreachable, say). The first line is the summary a monitoring system shows."""

from __future__ import annotations

import sys
from argparse import ArgumentParser
from dataclasses import asdict
from typing import Any

from django.core.management.base import BaseCommand

from mailgrant.cli.support import error_text, human, json_text
from mailgrant.common.health import Health
from mailgrant.worker.status import KINDS, StatusOverview, status_overview

UNKNOWN = 3
_HEALTHS = [h.value for h in Health]


class Command(BaseCommand):
    help = (
        "How every grant, client, mailbox and directory is, what is not ok and its fix, and the "
        "workers alive. Exit 0 ok, 1 warning, 2 failing or needs re-authorization, 3 unknown."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--json", action="store_true", help="the overview as JSON")

    def handle(self, *args: Any, json: bool, **options: Any) -> None:
        try:
            status = status_overview()
        except Exception as exc:
            self.stderr.write(f"mailgrant status unknown: {error_text(exc)}")
            sys.exit(UNKNOWN)
        if json:
            self.stdout.write(json_text(asdict(status)))
        else:
            self._table(status)
        self.stdout.flush()
        sys.exit(status.exit_code)

    def _table(self, status: StatusOverview) -> None:
        out = self.stdout.write
        out(f"mailgrant {status.health.value.upper()}: {_summary(status)}")
        if status.hint:
            out(f"  {status.hint}")
        out("")
        widths = [max(len(h), 5) + 2 for h in _HEALTHS]
        out(f"{'':10}" + "".join(f"{h:>{w}}" for h, w in zip(_HEALTHS, widths, strict=True)))
        for kind in KINDS:
            numbers = [status.counts[kind][h] for h in _HEALTHS]
            out(f"{kind:10}" + "".join(f"{n:>{w}}" for n, w in zip(numbers, widths, strict=True)))
        if status.problems:
            out("")
            out("Not ok:")
        for p in status.problems:
            out(f"  {p.kind} {p.id} {p.name}: {p.health.value} ({p.reason or '-'})")
            out(
                f"    since {human(p.since)}, {p.consecutive_failures} failure(s) in a row, "
                f"last success {human(p.last_success_at)}, next attempt {human(p.next_attempt_at)}"
            )
            if p.hint:
                out(f"    fix: {p.hint}")
            if p.message:
                out(f"    error: {p.message.splitlines()[0] if p.message.strip() else '-'}")
        out("")
        if not status.workers:
            out("Workers: none alive")
        else:
            out("Workers:")
        for w in status.workers:
            out(
                f"  {w.name}: last beat {w.beat_age_seconds:.0f} s ago, concurrency {w.concurrency}"
            )


def _summary(status: StatusOverview) -> str:
    bad = [
        f"{n} {kind}{'s' if n > 1 else ''} {health.replace('_', ' ')}"
        for kind in KINDS
        for health in ("needs_reauthorization", "failing", "warning")
        if (n := status.counts[kind][health])
    ]
    if not status.workers:
        bad.append("no worker alive")
    return ", ".join(bad) or "all ok"
