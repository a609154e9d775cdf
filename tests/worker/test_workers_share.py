"""Several `mailgrant worker` processes over many mailboxes on the real Dovecot, mail arriving
throughout, one of them SIGKILLed mid-fetch: every message is stored exactly once, no mailbox
is fetched by two workers at once, the killed worker's claims are taken over once their lease
has run out (never before), no worker fetches more than its concurrency at once, and each
worker left its heartbeat row. On PostgreSQL (SKIP LOCKED) three workers over 300 mailboxes;
on SQLite (conditional updates) two over fewer. Plus the wake-ups: a "Fetch now" wakes a
worker whose next round is an hour away (from another process: NOTIFY on PostgreSQL, the
worker's wake-up socket on SQLite)."""

import json
import os
import random
import re
import smtplib
import subprocess
import sys
import threading
import time
from collections import defaultdict
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from tests.waiting import wait_until
from tests.worker.fleet import fleet_user

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
MAILGRANT = str(Path(sys.executable).with_name("mailgrant"))
LEASE = 10
CONCURRENCY = 6
FETCH_LINE = re.compile(r"fetch (start|end) mailbox=(\d+) worker=(\S+) at=([\d.]+)")


def _env(home: Path, database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAILGRANT_", "DJANGO_"))}
    env.update(
        MAILGRANT_HOME=str(home),
        MAILGRANT_DATABASE_URL=database_url,
        MAILGRANT_WORKER_LEASE=str(LEASE),
        MAILGRANT_LOG_LEVEL="DEBUG",  # the fetch start / end lines
        PYTHONPATH=str(ROOT),
        DJANGO_SETTINGS_MODULE="mailgrant.config.settings",
    )
    return env


def _fleet(env: dict[str, str], *args: str) -> Any:
    done = subprocess.run(
        [sys.executable, "-m", "tests.worker.fleet", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _migrate(env: dict[str, str]) -> None:
    done = subprocess.run(
        [MAILGRANT, "migrate", "--noinput"], env=env, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr


def _add_users(dovecot: Any, count: int) -> None:
    """Password users w000... for the fleet (Dovecot reads its passwd-file again when it
    changes)."""
    passwd = dovecot.root / "passwd"
    known = passwd.read_text(encoding="utf-8")
    lines = [
        f"{user}:{{PLAIN}}{password}::::::\n"
        for user, password in map(fleet_user, range(count))
        if f"\n{user}:" not in "\n" + known
    ]
    with passwd.open("a", encoding="utf-8") as out:
        out.writelines(lines)


class Deliverer(threading.Thread):
    """Mail arriving throughout: one message at a time to a random fleet user, over LMTP."""

    def __init__(self, dovecot: Any, users: dict[str, str], tag: str) -> None:
        super().__init__(daemon=True)
        self.dovecot, self.users, self.tag = dovecot, users, tag
        self.delivered: dict[str, set[str]] = defaultdict(set)  # mailbox -> Message-IDs
        self.halt = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        names = sorted(self.users)
        n = 0
        try:
            with smtplib.LMTP("127.0.0.1", self.dovecot.lmtp_port, timeout=30) as lmtp:
                while not self.halt.wait(0.02):
                    name = random.choice(names)
                    n += 1
                    message_id = f"<fleet-{self.tag}-{n}@example.test>"
                    raw = (
                        f"Message-ID: {message_id}\r\nFrom: s@example.test\r\n"
                        f"To: {self.users[name]}\r\nSubject: fleet {n}\r\n\r\nbody {n}\r\n"
                    )
                    lmtp.sendmail("s@example.test", [self.users[name]], raw.encode())
                    self.delivered[name].add(message_id)
        except BaseException as exc:  # the test fails on it
            self.error = exc

    def stop(self) -> None:
        self.halt.set()
        self.join(timeout=30)
        assert self.error is None, self.error


def _fetches(logs: list[Path]) -> list[tuple[str, int, str, float]]:
    events = []
    for log in logs:
        for match in FETCH_LINE.finditer(log.read_text(errors="replace")):
            kind, mailbox, worker, at = match.groups()
            events.append((kind, int(mailbox), worker, float(at)))
    return events


def _intervals(
    events: list[tuple[str, int, str, float]], *, cut: dict[str, float]
) -> dict[int, list[tuple[float, float, str]]]:
    """Each mailbox's fetches as (start, end, worker); a fetch of a killed worker that never
    ended ends at its kill (`cut`)."""
    open_: dict[tuple[int, str], float] = {}
    spans: dict[int, list[tuple[float, float, str]]] = defaultdict(list)
    for kind, mailbox, worker, at in sorted(events, key=lambda e: (e[3], e[0] == "start")):
        if kind == "start":
            assert (mailbox, worker) not in open_, "a worker started a mailbox it was fetching"
            open_[(mailbox, worker)] = at
        else:
            spans[mailbox].append((open_.pop((mailbox, worker)), at, worker))
    for (mailbox, worker), start in open_.items():
        assert worker in cut, f"worker {worker} left a fetch of mailbox {mailbox} unfinished"
        spans[mailbox].append((start, cut[worker], worker))
    return spans


def _wait_every(what: str, check: Any, timeout: float) -> Any:
    """Its checks read the workers' logs: twice a second is often enough."""
    return wait_until(what, check, timeout, every=0.5)


def _start_worker(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [MAILGRANT, "worker", "--concurrency", str(CONCURRENCY), *args],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
    )


def test_workers_share_the_mailboxes_and_take_over_a_killed_ones(
    dovecot, oidc, tmp_path, database_url
) -> None:
    postgres = database_url.startswith("postgres")
    count, workers = (300, 3) if postgres else (40, 2)
    env = _env(tmp_path, database_url)
    _migrate(env)
    _add_users(dovecot, count)
    users = _fleet(env, "setup", str(dovecot.imap_port), str(count), oidc.issuer)
    assert len(users) == count + 2  # and the two OAuth mailboxes (alice, bob)
    deliverer = Deliverer(dovecot, users, tag=tmp_path.name)
    deliverer.start()
    logs = [tmp_path / f"worker-{i}.log" for i in range(workers)]
    processes = [_start_worker(env, log, "--tick", "1") for log in logs]
    victim, victim_log = processes[0], logs[0]
    try:
        ids = _fleet(env, "report")["ids"]
        # A whole cycle first (every mailbox fetched once), then the victim mid-fetch.
        _wait_every(
            "every mailbox fetched once",
            lambda: {m for kind, m, _, _ in _fetches(logs) if kind == "end"} >= set(ids.values()),
            timeout=180,
        )

        def victim_busy() -> bool:
            kinds = [kind for kind, *_ in _fetches([victim_log])]
            return kinds.count("start") - kinds.count("end") >= 2

        _wait_every("the victim fetching", victim_busy, timeout=60)
        victim.kill()
        killed_at = time.time()
        victim.wait(timeout=30)
        victim_name = next(w for _, _, w, _ in _fetches([victim_log]))
        held = {
            ids[name]: until
            for name, (by, until) in _fleet(env, "report")["claims"].items()
            if by == victim_name
        }
        assert held, "the killed worker held no claim"
        # Mail keeps arriving past the lease and a poll interval more.
        time.sleep(LEASE + 12)
        deliverer.stop()

        def all_stored() -> bool:
            stored = {(n, m) for n, m in _fleet(env, "report")["messages"]}
            return all(
                (name, m) in stored for name, sent in deliverer.delivered.items() for m in sent
            )

        _wait_every("every delivered message stored", all_stored, timeout=180)
    finally:
        deliverer.halt.set()
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                pytest.fail("a worker did not stop on SIGTERM")
    report = _fleet(env, "report")

    # Exactly once: every delivered message stored once in its mailbox, nothing twice.
    ours = [(n, m) for n, m in report["messages"] if m.startswith(f"<fleet-{tmp_path.name}-")]
    assert len(ours) == len(set(ours)) == sum(map(len, deliverer.delivered.values()))
    assert set(ours) == {(n, m) for n, sent in deliverer.delivered.items() for m in sent}

    # Never two workers on one mailbox at once, the victim's open fetches lasting to its death.
    events = _fetches(logs)
    spans = _intervals(events, cut={victim_name: killed_at})
    for mailbox, fetches in spans.items():
        fetches.sort()
        for (_, end, first), (start, _, second) in pairwise(fetches):
            assert start >= end, f"mailbox {mailbox}: {first} and {second} fetched it at once"

    # The victim's claims were taken over, and only once their lease had run out.
    for mailbox, until in held.items():
        later = [s for s, _, w in spans[mailbox] if w != victim_name and s > killed_at]
        assert later, f"mailbox {mailbox}, claimed by the killed worker, was never fetched again"
        assert min(later) >= until - 0.5, f"mailbox {mailbox} was taken before its lease ended"

    # Each worker kept to its concurrency, and worked in parallel.
    peaks = {}
    for worker in {w for _, _, w, _ in events}:
        running = peak = 0
        mine = sorted(
            ((at, kind == "start") for kind, _, w, at in events if w == worker),
            key=lambda e: (e[0], e[1]),  # an end before a start at the same instant
        )
        for _, starts in mine:
            running += 1 if starts else -1
            peak = max(peak, running)
        peaks[worker] = peak
    assert len(peaks) == workers
    assert max(peaks.values()) <= CONCURRENCY and max(peaks.values()) > 1, peaks

    # Heartbeat rows: the killed worker is dead (no beat within its lease), the others stopped.
    states = {w["name"]: w for w in report["workers"]}
    assert set(states) == set(peaks)
    assert states[victim_name]["state"] == "dead"
    assert all(w["state"] == "stopped" for name, w in states.items() if name != victim_name)
    assert all(w["concurrency"] == CONCURRENCY for w in states.values())
    assert all(0 < w["peak"] <= CONCURRENCY for name, w in states.items() if name != victim_name)
    assert not report["claims"]  # every claim ended with its fetch, or with its lease


def test_fetch_soon_from_another_process_wakes_a_worker_at_once(
    dovecot, tmp_path, database_url
) -> None:
    """LISTEN/NOTIFY on PostgreSQL, the worker's wake-up socket on SQLite: the worker's own
    rounds are an hour apart."""
    env = _env(tmp_path, database_url)
    _migrate(env)
    _add_users(dovecot, 1)
    users = _fleet(env, "setup", str(dovecot.imap_port), "1", "-")
    log = tmp_path / "worker.log"
    worker = _start_worker(env, log, "--tick", "3600")  # no round of its own for an hour
    try:
        _wait_every("the first round", lambda: _fetches([log]), timeout=60)  # box-000 was due
        fetched = len(_fetches([log]))
        dovecot.deliver(users["box-000"], b"Message-ID: <soon@example.test>\r\n\r\nsoon\r\n")
        _fleet(env, "fetch-soon", "box-000")
        _wait_every(
            "the woken fetch",
            lambda: ["box-000", "<soon@example.test>"] in _fleet(env, "report")["messages"],
            timeout=60,
        )
        assert len(_fetches([log])) > fetched
    finally:
        worker.terminate()
        worker.wait(timeout=30)
