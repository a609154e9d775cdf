"""The worker's refresh job: N due grants refreshed against a fast local token endpoint, against
raw httpx loops doing the same refreshes at the same concurrency, in the same run.

Sets up its own MAILGRANT_HOME with the default SQLite database (what `make run` uses), one
generic client whose token URL is a tiny threaded HTTP server in a process of its own
(HTTP/1.1, keep-alive; it rotates every refresh token it is given and records each use), and
N authorized grants all due now. Then:

  raw keep-alive  C threads, one httpx.Client each, POSTing the refresh_token grants: the
                  provider's and HTTP's own cost, the baseline
  raw per-call    the same with httpx.post (a new connection per refresh)
  mailgrant       oauth.jobs.grants_refresh_due run in rounds, as the worker runs it, with a pool
                  of C threads (its submit), until every grant is refreshed: claims, the refresh
                  lease, the token request, the grant's write with its audit row
  mailgrant xP    the same in P processes sharing the database and the concurrency, as
                  `mailgrant worker` run once per core shares a fleet's grants

Each phase starts from fresh refresh tokens. "ratio" is the raw refreshes/s over mailgrant's
(1.0: the job costs nothing beyond the token request; target >= 0.8 against keep-alive). Every
refresh token must reach the endpoint exactly once in the mailgrant phase (a second use would be
a second refresh of one due) and every grant must end with refresh_count 1, or the run fails.

    .venv/bin/python bench/refresh.py [--grants 2000] [--concurrency 16] [--full] [--latency MS]
                                      [--database-url postgres://...]

--full is --grants 10000 (a few minutes here on 2 shared cores). --latency makes the endpoint
answer as a provider tens of milliseconds away would: the job's own cost (its database work per
refresh) then weighs less against the wait for the provider.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from _pool import PoolContext  # bench/ is on the path of a script run from it

ROOT = Path(__file__).resolve().parent.parent
CLIENT_ID, CLIENT_SECRET = "bench-client", "bench-client-secret"


class TokenEndpointServer:
    """A token endpoint that rotates: each refresh token in, a new one out, uses counted.
    `GET /uses` answers the counts, `POST /reset` clears them."""

    def __init__(self, latency: float, port: int = 0) -> None:
        self.latency = latency
        self.uses: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.counter = itertools.count()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                # Headers and body go out as two writes: without this, Nagle holds the body
                # for the client's delayed ACK (40 ms) on every kept-alive request.
                self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def do_GET(self) -> None:
                with endpoint.lock:
                    self.answer(dict(endpoint.uses))

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                if self.path == "/reset":
                    with endpoint.lock:
                        endpoint.uses.clear()
                    self.answer({})
                    return
                token = form.get("refresh_token", "")
                with endpoint.lock:
                    endpoint.uses[token] += 1
                    n = next(endpoint.counter)
                if endpoint.latency:
                    time.sleep(endpoint.latency)
                self.answer(
                    {
                        "access_token": f"at-{n}",
                        "token_type": "Bearer",
                        "expires_in": 3600,
                        "refresh_token": f"rt-new-{n}",
                        "scope": "openid email offline_access",
                    }
                )

            def answer(self, payload: dict[str, Any]) -> None:
                body = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            request_queue_size = 256  # a new connection per refresh: a deep accept queue

        self.server = Server(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True


class TokenEndpoint:
    """The endpoint in a process of its own, as a provider is: in this one it would compete
    for the interpreter lock with the refreshes it answers, the raw loops' and mailgrant's."""

    def __init__(self, latency: float = 0.0) -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--serve-endpoint", str(latency)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        port = int(self.process.stdout.readline())
        self.base = f"http://127.0.0.1:{port}"
        self.url = f"{self.base}/token"

    @property
    def uses(self) -> Counter[str]:
        import httpx

        return Counter(httpx.get(f"{self.base}/uses", timeout=60).json())

    def reset(self) -> None:
        import httpx

        httpx.post(f"{self.base}/reset", timeout=60).raise_for_status()

    def close(self) -> None:
        self.process.terminate()
        self.process.wait()


def serve_endpoint(latency: float) -> None:
    endpoint = TokenEndpointServer(latency)
    print(endpoint.server.server_address[1], flush=True)
    endpoint.server.serve_forever(0.05)


def setup(home: Path, token_url: str, database_url: str = "") -> None:
    os.environ.update(
        MAILGRANT_HOME=str(home),
        DJANGO_SETTINGS_MODULE="mailgrant.config.settings",
        MAILGRANT_LOG_LEVEL="WARNING",
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
    from mailgrant.oauth.models import OAuthClient
    from mailgrant.oauth.services.clients import oauth_client_save

    oauth_client_save(
        client=OAuthClient(
            name="bench",
            provider="generic",
            client_id=CLIENT_ID,
            authorize_url="https://provider.invalid/authorize",
            token_url=token_url,
        ),
        client_secret=CLIENT_SECRET,
    )


def make_grants(count: int, phase: str) -> list[str]:
    """`count` authorized grants of the client, all due now (those of an earlier phase go);
    their refresh tokens."""
    from datetime import UTC, datetime

    from django.db import connections
    from django.utils import timezone

    from mailgrant.common.models import AuditEvent
    from mailgrant.oauth.models import Grant, OAuthClient
    from mailgrant.oauth.protocol import TokenSet

    Grant.objects.all().delete()
    AuditEvent.objects.all().delete()
    client = OAuthClient.objects.get(name="bench")
    now = time.time()
    tokens = [f"rt-{phase}-{i}" for i in range(count)]
    due = timezone.now()
    rows = []
    for i, refresh_token in enumerate(tokens):
        ts = TokenSet(
            access_token=f"at-{phase}-{i}",
            refresh_token=refresh_token,
            expires_at=now + 3600,
            obtained_at=now,
            scope="openid email offline_access",
        ).to_dict()
        rows.append(
            Grant(
                client=client,
                account=f"user{i}@example.test",
                state=Grant.State.AUTHORIZED,
                token_set=ts,
                original_token_set=ts,
                expires_at=datetime.fromtimestamp(now + 3600, tz=UTC),
                next_refresh_at=due,
            )
        )
    Grant.objects.bulk_create(rows, batch_size=500)
    # A table loaded at once has no planner statistics yet (autovacuum would gather them on
    # a live database): without them PostgreSQL reads every grant for each claim.
    with connections["default"].cursor() as cursor:
        cursor.execute(f"ANALYZE {Grant._meta.db_table}")
    connections.close_all()
    return tokens


def raw(url: str, tokens: list[str], concurrency: int, *, keepalive: bool) -> float:
    """Seconds for `concurrency` threads to refresh every token with plain httpx."""
    import httpx

    chunks = [tokens[i::concurrency] for i in range(concurrency)]
    tls = httpx.create_ssl_context()  # built once, as mailgrant does: not the cost measured

    def run(chunk: list[str]) -> None:
        client = httpx.Client(timeout=15, verify=tls) if keepalive else None
        try:
            for token in chunk:
                data = {"grant_type": "refresh_token", "refresh_token": token}
                auth = (CLIENT_ID, CLIENT_SECRET)
                answer = (
                    client.post(url, data=data, auth=auth)
                    if client
                    else httpx.post(url, data=data, auth=auth, timeout=15, verify=tls)
                )
                answer.raise_for_status()
                answer.json()
        finally:
            if client:
                client.close()

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(run, chunks))
    return time.perf_counter() - started


def _refresh_failure(outcome: Any) -> str:
    return "" if outcome == "ok" else str(outcome)


def mailgrant_job(count: int, concurrency: int) -> float:
    from django.utils import timezone

    from mailgrant.oauth.jobs import grants_refresh_due

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        ctx = PoolContext(pool, concurrency, failure=_refresh_failure)
        while ctx.done < count and not ctx.failed:
            ctx.now = timezone.now()
            if not grants_refresh_due(ctx):
                time.sleep(0.002)
    if ctx.failed:
        raise SystemExit(f"FAIL: {len(ctx.failed)} refreshes failed, e.g. {ctx.failed[0]!r}")
    return time.perf_counter() - started


def mailgrant_processes(count: int, concurrency: int, processes: int, home: Path) -> float:
    """The job in `processes` worker processes sharing the database (and the concurrency), as
    `mailgrant worker` runs once per core: seconds from the start signal until every grant is
    refreshed (the processes' start-up is not counted)."""
    share = max(1, concurrency // processes)
    children = [
        subprocess.Popen(
            [sys.executable, __file__, "--job-process", str(home), str(share)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=os.environ.copy(),
        )
        for _ in range(processes)
    ]
    for child in children:
        assert child.stdout is not None
        if child.stdout.readline().strip() != "ready":
            raise SystemExit("FAIL: a job process did not start")
    started = time.perf_counter()
    for child in children:
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()
    failed = [child for child in children if child.wait() != 0]
    seconds = time.perf_counter() - started
    if failed:
        raise SystemExit(f"FAIL: {len(failed)} job process(es) failed")
    from mailgrant.oauth.models import Grant

    if Grant.objects.filter(refresh_count=0).exists():
        raise SystemExit("FAIL: grants left unrefreshed")
    return seconds


def job_process(share: int) -> None:
    """One of mailgrant_processes' workers: rounds until no grant is due or being refreshed."""
    import django
    from django.utils import timezone

    sys.path.insert(0, str(ROOT / "src"))
    django.setup()
    from mailgrant.oauth.jobs import grants_refresh_due
    from mailgrant.oauth.models import Grant

    print("ready", flush=True)
    sys.stdin.readline()
    with ThreadPoolExecutor(share) as pool:
        ctx = PoolContext(pool, share, failure=_refresh_failure)
        while not ctx.failed:
            ctx.now = timezone.now()
            if grants_refresh_due(ctx):
                continue
            if ctx.slots() == share and not Grant.objects.filter(refresh_count=0).exists():
                break
            time.sleep(0.002)
    if ctx.failed:
        raise SystemExit(f"FAIL: {len(ctx.failed)} refreshes failed, e.g. {ctx.failed[0]!r}")


def check_once(endpoint: TokenEndpoint, tokens: list[str]) -> None:
    from mailgrant.oauth.models import Grant

    uses = endpoint.uses
    twice = [t for t, n in uses.items() if n > 1]
    missing = [t for t in tokens if uses[t] != 1]
    counts = Counter(Grant.objects.values_list("refresh_count", flat=True))
    if twice or missing or counts != Counter({1: len(tokens)}):
        raise SystemExit(
            f"FAIL: not exactly once: {len(twice)} tokens used twice, {len(missing)} not once, "
            f"refresh counts {dict(counts)}"
        )


def main() -> None:
    if sys.argv[1:2] == ["--serve-endpoint"]:
        serve_endpoint(float(sys.argv[2]))
        return
    if sys.argv[1:2] == ["--job-process"]:
        job_process(int(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grants", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--full", action="store_true", help="10,000 grants")
    parser.add_argument(
        "--latency",
        type=float,
        default=0.0,
        metavar="MS",
        help="the endpoint answers after this long (a real provider is tens of ms away)",
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=2,
        metavar="P",
        help="also run the job in P worker processes sharing the concurrency (1: not)",
    )
    parser.add_argument(
        "--database-url",
        default="",
        metavar="URL",
        help="an empty PostgreSQL database to use instead of a fresh SQLite one",
    )
    args = parser.parse_args()
    count = 10_000 if args.full else args.grants
    c = args.concurrency
    endpoint = TokenEndpoint(args.latency / 1000)
    with (
        tempfile.TemporaryDirectory(prefix="mailgrant-bench-refresh-") as home,
        contextlib.closing(endpoint),
    ):
        setup(Path(home), endpoint.url, args.database_url)
        print(
            f"{count} due grants, concurrency {c}, endpoint latency {args.latency:g} ms, "
            f"{'PostgreSQL' if args.database_url else 'SQLite'}, "
            f"load {os.getloadavg()[0]:.2f}"
        )
        results: dict[str, float] = {}
        tokens = [f"rt-raw-{i}" for i in range(count)]
        results["raw keep-alive"] = raw(endpoint.url, tokens, c, keepalive=True)
        results["raw per-call"] = raw(endpoint.url, tokens, c, keepalive=False)
        tokens = make_grants(count, "job")
        endpoint.reset()
        results["mailgrant"] = mailgrant_job(count, c)
        check_once(endpoint, tokens)
        if args.processes > 1:
            tokens = make_grants(count, "processes")
            endpoint.reset()
            name = f"mailgrant x{args.processes}"
            results[name] = mailgrant_processes(count, c, args.processes, Path(home))
            check_once(endpoint, tokens)
        base = results["raw keep-alive"]
        for name, seconds in results.items():
            rate = count / seconds
            print(
                f"  {name:15} {seconds:7.2f} s  {rate:8.0f} refreshes/s  "
                f"ratio {base / seconds:4.2f} of raw keep-alive"
            )
        print(
            f"mailgrant / raw per-call: {results['raw per-call'] / results['mailgrant']:.2f}; "
            "each grant refreshed exactly once"
        )


if __name__ == "__main__":
    main()
