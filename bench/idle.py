"""IMAP IDLE at scale: N mailboxes watched by one IdleService (one asyncio loop, one thread).

Starts a throwaway Dovecot on loopback with N password users, makes N IDLE mailboxes with a
one-hour poll interval (so every fetch measured is one IDLE caused), starts one IdleService
and a stand-in for the worker's runtime (beat every second; on a wake, the due mailboxes are
fetched through mailbox_fetch in a pool of --pool threads, as the worker's bounded pool
would), waits until every mailbox is connected, then delivers --messages messages through
Dovecot's LMTP, spread over the mailboxes, --rate a second.

Printed:
  connect   seconds until all N are connected and idling
  memory    RSS (VmRSS) and threads of this process before the service and with N watched;
            per mailbox: the difference over N
  latency   arrival -> EXISTS seen by the watcher (the server's own notice: the floor, measured
            in the same run) and arrival -> stored (the Message row committed), p50 / p99,
            and their ratio ("x floor")

    .venv/bin/python bench/idle.py [--mailboxes 150] [--messages 300] [--rate 20] [--large]

--large watches 500 mailboxes. The machine is shared: its load is printed before and after;
trust the ratios more than the milliseconds.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mailboxes", type=int, default=150)
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--rate", type=float, default=20.0, help="deliveries a second")
    parser.add_argument("--pool", type=int, default=8, help="fetching threads")
    parser.add_argument("--large", action="store_true", help="500 mailboxes")
    args = parser.parse_args()
    count = 500 if args.large else args.mailboxes

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import close_old_connections
    from django.utils import timezone
    from tests.servers.dovecot_idle import IdleDovecot

    from mailgrant.common.audit import WORKER
    from mailgrant.common.errors import ServiceError
    from mailgrant.mailboxes.idle import IdleService
    from mailgrant.mailboxes.models import Mailbox, Message
    from mailgrant.mailboxes.protocol.idle import IdleEvent, IdleSettings
    from mailgrant.mailboxes.services.fetch import mailbox_fetch
    from mailgrant.mailboxes.services.mailboxes import mailbox_save

    call_command("migrate", verbosity=0)
    print(f"IMAP IDLE: {count} mailboxes on one IdleService; {load()}")
    users = {f"bench{n:04d}@example.test": f"pw-{n}" for n in range(count)}
    with IdleDovecot(introspection_url="http://127.0.0.1:1/unused") as dovecot:
        dovecot.add_password_users(users)
        Mailbox.objects.all().delete()
        boxes: list[Mailbox] = []
        for user, password in users.items():
            boxes.append(
                mailbox_save(
                    mailbox=Mailbox(
                        name=user,
                        protocol="imap",
                        direction="incoming",
                        host="127.0.0.1",
                        port=dovecot.imap_port,
                        security="none",
                        username=user,
                        auth_method="password",
                        poll_interval=3600,
                        push="idle",
                    ),
                    password=password,
                )
            )
        Mailbox.objects.update(next_poll_at=timezone.now() + timedelta(hours=1))
        by_user = {b.username: b for b in boxes}

        exists_at: dict[int, list[float]] = {}
        service = IdleService(settings=IdleSettings(), lease_seconds=120, capacity=count)
        original = service._on_event

        async def on_event(event: IdleEvent) -> None:
            if event.kind == "exists":
                exists_at.setdefault(event.key, []).append(time.time())
            await original(event)

        service._on_event = on_event  # type: ignore[method-assign]

        close_old_connections()
        rss_before, threads_before = rss_mb(), threading.active_count()
        woken = threading.Event()
        stop = threading.Event()
        pool = ThreadPoolExecutor(max_workers=args.pool, thread_name_prefix="fetch")
        in_flight: set[int] = set()
        lock = threading.Lock()

        def fetch(pk: int) -> None:
            try:
                with contextlib.suppress(ServiceError):
                    mailbox_fetch(mailbox=Mailbox.objects.get(pk=pk), actor=WORKER)
            finally:
                close_old_connections()
                with lock:
                    in_flight.discard(pk)

        def runtime() -> None:
            next_beat = 0.0
            while not stop.is_set():
                woken.clear()  # before the look: a wake during it is kept for the next
                if time.monotonic() >= next_beat:
                    service.beat(now=timezone.now())
                    next_beat = time.monotonic() + 1.0
                due = Mailbox.objects.filter(next_poll_at__lte=timezone.now()).values_list(
                    "pk", flat=True
                )
                for pk in due:
                    with lock:
                        if pk in in_flight:
                            continue
                        in_flight.add(pk)
                    # the poll's claim: not offered again until the fetch records its outcome
                    Mailbox.objects.filter(pk=pk).update(
                        next_poll_at=timezone.now() + timedelta(minutes=10)
                    )
                    pool.submit(fetch, pk)
                woken.wait(0.5)
            close_old_connections()

        service.start(worker="bench", wake=woken.set)
        started = time.monotonic()
        loop = threading.Thread(target=runtime, name="runtime")
        loop.start()
        try:
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                watching = service.watching()
                if len(watching) == count and all(w.stats.connected for w in watching.values()):
                    break
                time.sleep(0.2)
            else:
                raise SystemExit("not every mailbox connected within 300 s")
            connect_seconds = time.monotonic() - started
            time.sleep(2)  # the first look's fetches (nothing new) settle
            rss_after, threads_after = rss_mb(), threading.active_count()
            own_threads = sum(1 for t in threading.enumerate() if t.name.startswith("idle"))

            delivered: dict[str, tuple[float, int]] = {}
            stored: dict[str, float] = {}
            delivering = threading.Event()
            delivering.set()

            def watch_rows() -> None:
                """When each delivered message's row is there (every 20 ms), meanwhile."""
                while delivering.is_set() or len(stored) < len(delivered):
                    pending = [m for m in list(delivered) if m not in stored]
                    now = time.time()
                    for mid in Message.objects.filter(message_id__in=pending).values_list(
                        "message_id", flat=True
                    ):
                        stored[mid] = now
                    if time.monotonic() > give_up:
                        break
                    time.sleep(0.02)
                close_old_connections()

            give_up = time.monotonic() + 120 + args.messages / args.rate
            checker = threading.Thread(target=watch_rows, name="rows")
            checker.start()
            gap = 1.0 / args.rate
            names = list(by_user)
            for n in range(args.messages):
                user = names[n % count]
                mid = f"<bench-idle-{n}-{uuid.uuid4().hex[:8]}@example.test>"
                raw = f"Message-ID: {mid}\r\nSubject: idle {n}\r\n\r\nbody {n}\r\n".encode()
                at = time.time()
                dovecot.deliver(user, raw)
                delivered[mid] = (at, by_user[user].pk)
                time.sleep(max(0.0, gap - (time.time() - at)))
            delivering.clear()
            checker.join()
        finally:
            stop.set()
            woken.set()
            loop.join(timeout=60)
            pool.shutdown(wait=True)
            service.stop()

        to_stored = [(stored[m] - at) * 1000 for m, (at, _) in delivered.items() if m in stored]
        to_exists: list[float] = []
        for _mid, (at, pk) in delivered.items():
            seen = [t for t in exists_at.get(pk, []) if t >= at]
            if seen:
                to_exists.append((min(seen) - at) * 1000)
        lost = len(delivered) - len(stored)
        print(f"  connect   {connect_seconds:.1f} s for {count} mailboxes")
        print(
            f"  memory    RSS {rss_before:.0f} -> {rss_after:.0f} MB "
            f"({(rss_after - rss_before) * 1024 / count:.0f} KB a mailbox); threads "
            f"{threads_before} -> {threads_after} "
            f"(the service's own: {own_threads}, {own_threads / count:.3f} a mailbox; the rest "
            "the stand-in runtime and its fetch pool)"
        )
        if to_exists and to_stored:
            p50e, p99e = percentile(to_exists, 0.5), percentile(to_exists, 0.99)
            p50s, p99s = percentile(to_stored, 0.5), percentile(to_stored, 0.99)
            print(
                f"  latency   arrival -> EXISTS p50 {p50e:.0f} ms, p99 {p99e:.0f} ms (the floor); "
                f"arrival -> stored p50 {p50s:.0f} ms, p99 {p99s:.0f} ms "
                f"(mean {statistics.mean(to_stored):.0f} ms)"
            )
            ratio50, ratio99 = p50s / max(p50e, 1), p99s / max(p99e, 1)
            print(f"            x floor: p50 {ratio50:.1f}x, p99 {ratio99:.1f}x")
        print(
            f"  messages  {len(delivered)} delivered at {args.rate:g}/s, {len(stored)} stored"
            + (f", {lost} NOT STORED" if lost else "")
        )
        print(f"  {load()}")
        if lost:
            raise SystemExit(1)


if __name__ == "__main__":
    main()
