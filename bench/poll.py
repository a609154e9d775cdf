"""Polling at scale: one full cycle of the worker over N OAuth mailboxes on Dovecot (XOAUTH2
logins, the token checked by introspection at the test OpenID provider), reached through a TCP
relay that adds a round trip (--rtt, default 30 ms: a remote Exchange Online or Gmail is
further than loopback), against a raw imaplib thread pool doing the same logins and fetches at
the same concurrency, in the same run.

  raw        a ThreadPoolExecutor of --concurrency threads: per mailbox connect, AUTHENTICATE
             XOAUTH2 (the token read once up front), SELECT INBOX, UID SEARCH ALL, UID FETCH
             BODY.PEEK[] of the new messages into memory, LOGOUT: the practical limit
  mailgrant  a WorkerRuntime with --concurrency slots running mailboxes_poll_due: claims,
             the token from the broker at each login, fetch, files written and synced,
             index rows committed, outcome recorded, claim released

Two cycles each: "5 new" (each mailbox's INBOX holds 5 messages it has not stored; half the
mailboxes log in as alice, half as bob, the two accounts of the provider) and "nothing new"
(the same again, all stored). Each tool runs in a child process of its own, timed inside it
from the first claim (or connect) to the last outcome; peak RSS is the child's VmHWM. "x raw"
is raw's time over mailgrant's: 1.0 is as fast as the raw pool (target >= 0.8). Dovecot allows
10 connections per user and address, so --concurrency above 20 is refused by it.

    .venv/bin/python bench/poll.py [--mailboxes 100] [--concurrency 8] [--rtt 0.03]
    .venv/bin/python bench/poll.py --mailboxes 1000     # the issue's size
"""

from __future__ import annotations

import argparse
import imaplib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ACCOUNTS = ("alice@example.test", "bob@example.test")
RESOURCE_SERVER = ("dovecot-resource-server", "dovecot-introspection-secret")
NEW = 5


def _peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


# --- children -------------------------------------------------------------------------------


def _django() -> None:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mailgrant.config.settings")
    django.setup()


def child_setup(issuer: str, port: int, count: int) -> dict[str, Any]:
    _django()
    from django.core.management import call_command
    from tests.oauth.token_worker import setup
    from tests.servers.oidc import ACCOUNTS as PASSWORDS

    from mailgrant.mailboxes.models import Mailbox
    from mailgrant.mailboxes.services.mailboxes import mailbox_save
    from mailgrant.oauth.models import Grant

    call_command("migrate", verbosity=0)
    grants = {}
    for login in ACCOUNTS:
        made = setup(issuer, login, PASSWORDS[login]["password"])
        grants[login] = Grant.objects.get(pk=made["grant"])
    for i in range(count):
        login = ACCOUNTS[i % 2]
        mailbox_save(
            mailbox=Mailbox(
                name=f"bench-{i:04d}",
                protocol="imap",
                direction="incoming",
                host="127.0.0.1",
                port=port,
                security="none",
                username=login,
                auth_method="oauth2",
                oauth_client=grants[login].client,
                grant=grants[login],
                poll_interval=3600,
            )
        )
    return {login: grant.tokens().access_token for login, grant in grants.items()}


def child_mailgrant(concurrency: int) -> dict[str, Any]:
    _django()
    from django.utils import timezone

    from mailgrant.mailboxes.jobs import mailboxes_leases_renew, mailboxes_poll_due
    from mailgrant.mailboxes.models import Mailbox, Message
    from mailgrant.worker.runtime import WorkerRuntime

    count = Mailbox.objects.count()
    times = {}
    for cycle in ("5 new", "nothing new"):
        Mailbox.objects.update(next_poll_at=timezone.now())
        runtime = WorkerRuntime(
            jobs=[mailboxes_poll_due],
            renewals=[mailboxes_leases_renew],
            concurrency=concurrency,
            tick=3600,
        )
        import threading

        thread = threading.Thread(target=runtime.run, daemon=True)
        started = time.perf_counter()
        thread.start()
        while sum(runtime.activity()["counts"].get(k, 0) for k in ("done", "failed")) < count:
            time.sleep(0.005)
        times[cycle] = time.perf_counter() - started
        runtime.stop()
        thread.join(timeout=60)
        failed = list(Mailbox.objects.exclude(last_error="").values_list("last_error", flat=True))
        assert not failed, failed[:3]
    stored = Message.objects.count()
    assert stored == count * NEW, (stored, count * NEW)  # each message stored once a mailbox
    return {"times": times, "rss": _peak_rss_mb()}


def child_raw(port: int, count: int, concurrency: int, tokens: dict[str, str]) -> dict[str, Any]:
    def one(i: int, fetch: bool) -> int:
        login = ACCOUNTS[i % 2]
        auth = f"user={login}\x01auth=Bearer {tokens[login]}\x01\x01".encode()
        imap = imaplib.IMAP4("127.0.0.1", port, timeout=60)
        try:
            imap.authenticate("XOAUTH2", lambda _: auth)
            imap.select("INBOX", readonly=True)
            _, data = imap.uid("SEARCH", "ALL")
            uids = data[0].split()
            got = 0
            if fetch and uids:
                _, parts = imap.uid("FETCH", b",".join(uids).decode(), "(BODY.PEEK[])")
                got = sum(1 for p in parts if isinstance(p, tuple))
            return got
        finally:
            imap.logout()

    times = {}
    for cycle, fetch in (("5 new", True), ("nothing new", False)):
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            got = list(pool.map(one, range(count), [fetch] * count))
        times[cycle] = time.perf_counter() - started
        if fetch:
            assert all(g == NEW for g in got), got[:5]
    return {"times": times, "rss": _peak_rss_mb()}


# --- the parent -----------------------------------------------------------------------------


def _child(env: dict[str, str], *args: str) -> Any:
    done = subprocess.run(
        [sys.executable, __file__, "--child", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=7200,
    )
    if done.returncode != 0:
        raise SystemExit(done.stderr[-4000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        what, *rest = sys.argv[2:]
        if what == "setup":
            out = child_setup(rest[0], int(rest[1]), int(rest[2]))
        elif what == "mailgrant":
            out = child_mailgrant(int(rest[0]))
        else:
            out = child_raw(int(rest[0]), int(rest[1]), int(rest[2]), json.loads(rest[3]))
        print(json.dumps(out))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mailboxes", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rtt", type=float, default=0.03, help="added round trip, seconds")
    args = parser.parse_args()

    from tests.servers.dovecot import DovecotServer
    from tests.servers.latency import LatencyProxy
    from tests.servers.oidc import OidcServer

    home = Path(tempfile.mkdtemp(prefix="mg-bench-poll-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAILGRANT_", "DJANGO_"))}
    env.update(
        MAILGRANT_HOME=str(home),
        MAILGRANT_LOG_LEVEL="WARNING",
        PYTHONPATH=str(ROOT),
        DJANGO_SETTINGS_MODULE="mailgrant.config.settings",
    )
    print(f"load before: {os.getloadavg()[0]:.2f}; {args.mailboxes} OAuth mailboxes, "
          f"concurrency {args.concurrency}, +{args.rtt * 1000:.0f} ms round trip")  # fmt: skip
    try:
        with OidcServer() as oidc:
            client_id, secret = RESOURCE_SERVER
            oidc.register_client(
                client_id=client_id,
                client_secret=secret,
                redirect_uris=["http://127.0.0.1:1/unused"],
            )
            introspection = oidc.issuer.replace("http://", f"http://{client_id}:{secret}@")
            with (
                DovecotServer(introspection_url=f"{introspection}/token/introspection") as dc,
                LatencyProxy(upstream_port=dc.imap_port, rtt=args.rtt) as proxy,
            ):
                for login in ACCOUNTS:
                    dc.deliver(
                        login,
                        *(
                            f"Message-ID: <poll-{n}@example.test>\r\nSubject: {n}\r\n\r\n"
                            f"{'body ' * 400}\r\n".encode()
                            for n in range(NEW)
                        ),
                    )
                tokens = _child(env, "setup", oidc.issuer, str(proxy.port), str(args.mailboxes))
                raw = _child(
                    env,
                    "raw",
                    str(proxy.port),
                    str(args.mailboxes),
                    str(args.concurrency),
                    json.dumps(tokens),
                )
                ours = _child(env, "mailgrant", str(args.concurrency))
    finally:
        shutil.rmtree(home, ignore_errors=True)
    print(f"{'cycle':<12} {'raw s':>8} {'mailgrant s':>12} {'x raw':>7} {'mailboxes/min':>14}")
    for cycle in ("5 new", "nothing new"):
        r, m = raw["times"][cycle], ours["times"][cycle]
        print(f"{cycle:<12} {r:>8.2f} {m:>12.2f} {r / m:>7.2f} "
              f"{args.mailboxes / m * 60:>14.0f}")  # fmt: skip
    print(f"peak RSS: raw {raw['rss']:.0f} MB, mailgrant {ours['rss']:.0f} MB")
    print(f"load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
