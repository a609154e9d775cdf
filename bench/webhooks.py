"""Webhook deliveries: N message.received events delivered by the worker's jobs to a local
receiver, against a raw httpx loop POSTing the same signed bodies at the same concurrency, in
the same run; then the store-to-receipt latency of events arriving one by one.

Sets up its own MAILGRANT_HOME with the default SQLite database (what `make run` uses), one
endpoint whose URL is a threaded HTTP server in a process of its own (HTTP/1.1, keep-alive;
it verifies every signature with the `standardwebhooks` library and logs each webhook-id with
its time of receipt). Then:

  raw        C threads, one httpx.Client each, POSTing the N signed bodies: the receiver's
             and HTTP's own cost, the baseline
  mailgrant  notify.jobs.events_fan_out and deliveries_send_due run in rounds, as the worker
             runs them, with a pool of C threads (its submit) and MAILGRANT_WEBHOOK_IN_FLIGHT
             C, until every delivery is delivered: the fan-out, claims, body and signature,
             the POST, the attempt row and the delivery's write
  latency    the real worker runtime (woken on commit) while events are stored one
             transaction at a time at a steady rate: receipt time minus the event's stored
             time, p50 / p99

"ratio" is mailgrant's deliveries/s over raw's (target >= 0.7). Every event must be received
(and verified) or the run fails.

    .venv/bin/python bench/webhooks.py [--events 10000] [--concurrency 8] [--database-url URL]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from _pool import PoolContext  # bench/ is on the path of a script run from it

ROOT = Path(__file__).resolve().parent.parent


def serve_receiver(secret: str, log: str) -> None:
    from standardwebhooks import Webhook, WebhookVerificationError

    out = open(log, "a", buffering=1)  # noqa: SIM115  # open for the process's life
    lock = threading.Lock()
    hook = Webhook(secret)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                hook.verify(body, headers)
                status, answer = 200, b"ok"
            except WebhookVerificationError:
                status, answer = 400, b"bad signature"
            if status == 200:
                with lock:
                    out.write(f"{headers['webhook-id']} {time.time():.6f}\n")
            self.send_response(status)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever(0.05)


class ReceiverProcess:
    def __init__(self, secret: str, log: Path) -> None:
        self.log = log
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--serve-receiver", secret, str(log)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.url = f"http://127.0.0.1:{int(self.process.stdout.readline())}/hook"

    def receipts(self) -> dict[str, float]:
        """webhook-id -> first receipt time."""
        first: dict[str, float] = {}
        for line in self.log.read_text().splitlines():
            uid, at = line.split()
            first.setdefault(uid, float(at))
        return first

    def clear(self) -> None:
        self.log.write_text("")

    def close(self) -> None:
        self.process.terminate()
        self.process.wait()


def setup(home: Path, database_url: str, concurrency: int) -> None:
    os.environ.update(
        MAILGRANT_HOME=str(home),
        DJANGO_SETTINGS_MODULE="mailgrant.config.settings",
        MAILGRANT_LOG_LEVEL="WARNING",
        MAILGRANT_WEBHOOK_ALLOW_PRIVATE="true",  # the receiver is on 127.0.0.1
        MAILGRANT_WEBHOOK_IN_FLIGHT=str(concurrency),
    )
    for inherited in ("MAILGRANT_DATABASE_URL", "MAILGRANT_VAULT_KEYS"):
        os.environ.pop(inherited, None)
    if database_url:
        os.environ["MAILGRANT_DATABASE_URL"] = database_url
    sys.path.insert(0, str(ROOT / "src"))
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def make_events(count: int, *, first_sequence: int = 1) -> list[Any]:
    """`count` message.received events (as the fetch writes them), stored in one transaction."""
    from django.db import transaction

    from mailgrant.common.events import event_build, events_record

    events = [
        event_build(
            type="message.received",
            data={
                "mailbox": {"id": 1, "name": "support"},
                "message": {
                    "id": n,
                    "message_id": f"<m{n}@example.test>",
                    "from": "sender@example.test",
                    "to": "support@example.test",
                    "subject": f"Message {n}",
                    "date": "2026-11-28T06:00:00+00:00",
                    "size": 2048,
                    "folder": "INBOX",
                    "uid": str(n),
                    "raw_url": f"https://mailgrant.example/api/v1/messages/{n}/raw",
                },
            },
            mailbox_id=1,
            sequence=n,
        )
        for n in range(first_sequence, first_sequence + count)
    ]
    with transaction.atomic():
        return events_record(events)


def raw(url: str, secret: str, events: list[Any], concurrency: int) -> float:
    import httpx

    from mailgrant.common.events import event_body
    from mailgrant.notify.signing import signed_headers

    bodies = [(e.uid, json.dumps(event_body(e), separators=(",", ":")).encode()) for e in events]
    chunks = [bodies[i::concurrency] for i in range(concurrency)]

    def run(chunk: list[tuple[str, bytes]]) -> None:
        from datetime import UTC, datetime

        with httpx.Client(timeout=30) as client:
            for uid, body in chunk:
                headers = signed_headers(secret=secret, msg_id=uid, at=datetime.now(UTC), body=body)
                client.post(url, content=body, headers=headers).raise_for_status()

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(run, chunks))
    return time.perf_counter() - started


def _delivery_failure(result: Any) -> str:
    return "" if result.ok else str(result.error)


def mailgrant_jobs(count: int, concurrency: int) -> float:
    from django.utils import timezone

    from mailgrant.notify.jobs import deliveries_send_due, events_fan_out

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        ctx = PoolContext(pool, concurrency, failure=_delivery_failure)
        while ctx.done < count and not ctx.failed:
            ctx.now = timezone.now()
            events_fan_out(ctx)
            if not deliveries_send_due(ctx):
                time.sleep(0.002)
    if ctx.failed:
        raise SystemExit(f"FAIL: {len(ctx.failed)} deliveries failed, e.g. {ctx.failed[0]}")
    return time.perf_counter() - started


def latency(receiver: ReceiverProcess, count: int, rate: float, concurrency: int) -> list[float]:
    """Events stored one transaction at a time at `rate`/s while a real worker runtime
    delivers them; each one's receipt time minus its stored time (seconds)."""
    from mailgrant.notify.jobs import deliveries_send_due, events_fan_out
    from mailgrant.worker.runtime import WorkerRuntime

    runtime = WorkerRuntime(
        jobs=[events_fan_out, deliveries_send_due], concurrency=concurrency, tick=1.0
    )
    thread = threading.Thread(target=runtime.run, daemon=True)
    thread.start()
    time.sleep(1.0)  # registered and listening
    stored: dict[str, float] = {}
    try:
        for n in range(count):
            [event] = make_events(1, first_sequence=10_000_000 + n)
            stored[event.uid] = event.created_at.timestamp()
            time.sleep(1 / rate)
        deadline = time.monotonic() + 120
        while len(set(stored) & set(receiver.receipts())) < count:
            if time.monotonic() > deadline:
                raise SystemExit("FAIL: not every latency event was received")
            time.sleep(0.1)
    finally:
        runtime.stop()
        thread.join(30)
    receipts = receiver.receipts()
    return sorted(receipts[uid] - at for uid, at in stored.items())


def main() -> None:
    if sys.argv[1:2] == ["--serve-receiver"]:
        serve_receiver(sys.argv[2], sys.argv[3])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--latency-events", type=int, default=500)
    parser.add_argument("--latency-rate", type=float, default=50.0, metavar="PER_S")
    parser.add_argument(
        "--database-url",
        default="",
        metavar="URL",
        help="an empty PostgreSQL database to use instead of a fresh SQLite one",
    )
    args = parser.parse_args()
    count, c = args.events, args.concurrency
    with tempfile.TemporaryDirectory(prefix="mailgrant-bench-webhooks-") as home:
        setup(Path(home), args.database_url, c)
        from mailgrant.common.audit import CLI
        from mailgrant.common.models import Event
        from mailgrant.notify.models import Delivery, WebhookEndpoint
        from mailgrant.notify.services.endpoints import webhook_endpoint_create

        # The receiver verifies with the endpoint's secret, so it starts after the endpoint.
        endpoint, secret = webhook_endpoint_create(
            values={
                "name": "bench",
                "url": "http://127.0.0.1:9/hook",
                "event_types": ["message.*"],
            },
            actor=CLI,
        )
        receiver = ReceiverProcess(secret, Path(home) / "receipts.log")
        with contextlib.closing(receiver):
            WebhookEndpoint.objects.filter(pk=endpoint.pk).update(url=receiver.url)
            print(
                f"{count} message.received events, concurrency {c}, "
                f"{'PostgreSQL' if args.database_url else 'SQLite'}, "
                f"load {os.getloadavg()[0]:.2f}"
            )
            events = make_events(count)
            raw_seconds = raw(receiver.url, secret, events, c)
            if len(receiver.receipts()) != count:
                raise SystemExit("FAIL: the raw loop's POSTs were not all received")
            receiver.clear()
            job_seconds = mailgrant_jobs(count, c)
            got = receiver.receipts()
            missing = {e.uid for e in events} - set(got)
            delivered = Delivery.objects.filter(state="delivered").count()
            if missing or delivered != count:
                raise SystemExit(f"FAIL: {len(missing)} events not received, {delivered} delivered")
            print(f"  raw        {raw_seconds:7.2f} s  {count / raw_seconds:8.0f} POSTs/s")
            print(
                f"  mailgrant  {job_seconds:7.2f} s  {count / job_seconds:8.0f} deliveries/s  "
                f"ratio {raw_seconds / job_seconds:4.2f} of raw"
            )
            Event.objects.all().delete()
            receiver.clear()
            lags = latency(receiver, args.latency_events, args.latency_rate, c)
            p50 = statistics.median(lags)
            p99 = lags[min(len(lags) - 1, int(len(lags) * 0.99))]
            print(
                f"  latency    store-to-receipt p50 {p50 * 1000:.1f} ms  p99 {p99 * 1000:.1f} ms "
                f"({args.latency_events} events at {args.latency_rate:g}/s); every event "
                "received and verified"
            )


if __name__ == "__main__":
    main()
