"""Scheduling: one cycle of N due mailboxes dispatched by mailgrant's claims (common.claims)
against Django's Tasks API through the `django-tasks` backport and its database backend
`django-tasks-db` (enqueue, then `db_worker`'s claim), on SQLite and on PostgreSQL.

The work itself is nothing (a fetch's cost is the same either way); what is measured is the
dispatch: finding what is due, claiming it so that no two workers take it, and recording the
outcome on the mailbox (its next poll time, the claim ended), since the schedule's state lives
on the mailbox either way:

  claims      claims_take of up to 16 due mailboxes at a time (the worker's slots), each item
              then released with its next poll time: what `mailgrant worker` does
  tasks       the due mailboxes marked as queued (one UPDATE) and one task enqueued for each
              (DBTaskResult rows), then django-tasks-db's Worker in batch mode: it claims one
              task per transaction (SELECT ... FOR UPDATE SKIP LOCKED on PostgreSQL), runs it
              (the same release of the mailbox) and records the task's result

Each is timed inside one child process per database (no interpreter or Django start-up),
--runs times round-robin; "x claims" is the median tasks time over the median claims time.
Connections are kept for both (CONN_MAX_AGE), so neither times reconnects. The machine is
shared: trust the ratios more than the seconds. django-tasks is not a
dependency of mailgrant: the bench installs both packages into var/bench-deps (pip --target).

    .venv/bin/python bench/scheduling.py [--mailboxes 1000] [--runs 3] [--postgres URL]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEPS = ROOT / "var" / "bench-deps"
PACKAGES = ("django-tasks==0.12.0", "django-tasks-db==0.13.0")
SLOTS = 16


def _install() -> None:
    if (DEPS / "django_tasks_db").is_dir() and (DEPS / "django_tasks").is_dir():
        return
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(DEPS),
         *PACKAGES],
        check=True,
    )  # fmt: skip


# --- the child: one database ------------------------------------------------------------------


def _poll_one(mailbox_id: int) -> None:
    """The task: the work's outcome written on the mailbox, as a fetch does."""
    from datetime import timedelta

    from django.utils import timezone

    from mailgrant.mailboxes.models import Mailbox

    Mailbox.objects.filter(pk=mailbox_id).update(
        claimed_by="", claimed_until=None, next_poll_at=timezone.now() + timedelta(seconds=300)
    )


def _child(mailboxes: int, runs: int) -> dict[str, list[float]]:
    import django

    django.setup()
    from datetime import timedelta

    from django.core.management import call_command
    from django.db import connection, transaction
    from django.db.models import Q
    from django.utils import timezone
    from django_tasks import task
    from django_tasks_db.management.commands.db_worker import Worker
    from django_tasks_db.models import DBTaskResult

    from mailgrant.common.claims import claims_release, claims_take
    from mailgrant.mailboxes.models import Mailbox

    global _poll_one
    _poll_one = task()(_poll_one)  # a module-level name: the worker imports it by path
    call_command("migrate", verbosity=0)
    Mailbox.objects.bulk_create(
        Mailbox(
            name=f"m{i}",
            protocol="imap",
            direction="incoming",
            host="127.0.0.1",
            port=143,
            security="none",
            username=f"u{i}@example.test",
            auth_method="password",
        )
        for i in range(mailboxes)
    )

    def due() -> Any:
        now = timezone.now()
        return Mailbox.objects.filter(enabled=True).filter(
            Q(next_poll_at__isnull=True) | Q(next_poll_at__lte=now)
        )

    def reset() -> None:
        Mailbox.objects.update(next_poll_at=timezone.now() - timedelta(seconds=1))
        DBTaskResult.objects.all().delete()

    def by_claims() -> int:
        done = 0
        while True:
            now = timezone.now()
            ids = claims_take(
                due(),
                worker="bench",
                now=now,
                until=now + timedelta(seconds=60),
                limit=SLOTS,
                order_by="next_poll_at",
            )
            if not ids:
                return done
            for pk in ids:
                claims_release(
                    Mailbox,
                    worker="bench",
                    ids=[pk],
                    extra={"next_poll_at": timezone.now() + timedelta(seconds=300)},
                )
                done += 1

    def by_tasks() -> int:
        with transaction.atomic():
            ids = list(due().values_list("pk", flat=True))
            Mailbox.objects.filter(pk__in=ids).update(
                claimed_by="queued", claimed_until=timezone.now() + timedelta(seconds=60)
            )
            for pk in ids:
                _poll_one.enqueue(pk)  # type: ignore[attr-defined]
        Worker(
            queue_names=["default"],
            interval=0,
            batch=True,
            backend_name="default",
            startup_delay=False,
            max_tasks=None,
            worker_id="bench",
            excluded_queue_names=[],
        ).run()
        return DBTaskResult.objects.filter(status="SUCCESSFUL").count()

    times: dict[str, list[float]] = {"claims": [], "tasks": []}
    for _ in range(runs):
        for name, cycle in (("claims", by_claims), ("tasks", by_tasks)):
            reset()
            started = time.perf_counter()
            handled = cycle()
            times[name].append(time.perf_counter() - started)
            assert handled == mailboxes, (name, handled)
            assert not due().exists() and not Mailbox.objects.exclude(claimed_by="").exists()
    times["vendor"] = connection.vendor  # type: ignore[assignment]
    return times


# --- the parent -------------------------------------------------------------------------------


def _run_child(url: str, mailboxes: int, runs: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="mg-bench-sched-") as home:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MAILGRANT_", "DJANGO_"))}
        env.update(
            MAILGRANT_HOME=home,
            MAILGRANT_DATABASE_URL=url or f"sqlite:///{home}/bench.sqlite3",
            DJANGO_SETTINGS_MODULE="_scheduling_settings",
            PYTHONPATH=os.pathsep.join([str(DEPS), str(ROOT / "bench"), str(ROOT / "src")]),
        )
        done = subprocess.run(
            [sys.executable, __file__, "--child", str(mailboxes), str(runs)],
            env=env,
            capture_output=True,
            text=True,
            timeout=3600,
        )
        if done.returncode != 0:
            raise SystemExit(done.stderr[-4000:])
        return json.loads(done.stdout.strip().splitlines()[-1])


def _postgres_database(url: str) -> tuple[str, Any]:
    import psycopg

    name = f"mg_bench_sched_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return url.rsplit("/", 1)[0] + f"/{name}", drop


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        print(json.dumps(_child(int(sys.argv[2]), int(sys.argv[3]))))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mailboxes", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--postgres",
        default=os.environ.get("MAILGRANT_TEST_POSTGRES_URL", ""),
        help="a PostgreSQL URL whose server may create a scratch database (default "
        "MAILGRANT_TEST_POSTGRES_URL); SQLite only without it",
    )
    args = parser.parse_args()
    _install()
    print(
        f"load before: {os.getloadavg()[0]:.2f}; {args.mailboxes} due mailboxes, {args.runs} runs"
    )
    targets: list[tuple[str, str]] = [("SQLite", "")]
    if args.postgres:
        targets.append(("PostgreSQL", args.postgres))
    print(f"{'database':<11} {'way':<7} {'min s':>8} {'median s':>9} {'max s':>8} "
          f"{'items/s':>8} {'x claims':>9}")  # fmt: skip
    for label, url in targets:
        drop = None
        if url:
            url, drop = _postgres_database(url)
        try:
            times = _run_child(url, args.mailboxes, args.runs)
        finally:
            if drop:
                drop()
        base = statistics.median(times["claims"])
        for way in ("claims", "tasks"):
            t = times[way]
            median = statistics.median(t)
            print(f"{label:<11} {way:<7} {min(t):>8.3f} {median:>9.3f} {max(t):>8.3f} "
                  f"{args.mailboxes / median:>8.0f} {median / base:>9.2f}")  # fmt: skip
    print(f"load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
