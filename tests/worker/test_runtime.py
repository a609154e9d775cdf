"""The worker runtime in this process: its pool never runs more than its concurrency, a
wake-up from this process starts a round at once (SQLite has no NOTIFY), services start, beat
and stop with it, a stop is bounded and marks the row, and the admin lists the workers."""

import re
import threading
import time
from datetime import datetime
from typing import Any

import pytest
from django.core.management import call_command
from django.db import transaction

from mailgrant.common.jobs import JobContext
from mailgrant.common.wakeup import wakeup_notify
from mailgrant.mailboxes.models import Mailbox
from mailgrant.mailboxes.services.mailboxes import mailbox_save
from mailgrant.worker.admin import activity_summary
from mailgrant.worker.models import Worker
from mailgrant.worker.runtime import WorkerRuntime
from tests.servers.dovecot import PASSWORD_USERS
from tests.waiting import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def _running(runtime: WorkerRuntime) -> threading.Thread:
    thread = threading.Thread(target=runtime.run, daemon=True)
    thread.start()
    wait_until("the worker row", lambda: Worker.objects.filter(name=runtime.name).exists())
    return thread


class Service:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.worker = ""

    def start(self, *, worker: str, wake: Any) -> None:
        self.worker = worker
        self.calls.append("start")

    def beat(self, *, now: datetime) -> dict[str, Any]:
        self.calls.append("beat")
        return {"connections": 3}

    def stop(self) -> None:
        self.calls.append("stop")


def test_the_pool_runs_at_most_its_concurrency_and_refills_as_slots_free() -> None:
    release = threading.Event()
    seen: list[int] = []
    lock = threading.Lock()
    now_running = [0]
    wanted = 10

    def work() -> None:
        with lock:
            now_running[0] += 1
            seen.append(now_running[0])
        release.wait(30)
        with lock:
            now_running[0] -= 1

    submitted = [0]

    def job(ctx: JobContext) -> int:
        take = min(ctx.slots(), wanted - submitted[0])
        for _ in range(take):
            submitted[0] += 1
            ctx.submit(work, label=f"item {submitted[0]}")
        return take

    service = Service()
    runtime = WorkerRuntime(jobs=[job], services=[service], concurrency=3, tick=3600, beat=0.1)
    thread = _running(runtime)
    try:
        wait_until("a full pool", lambda: len(runtime.running()) == 3)
        assert runtime.slots() == 0
        assert submitted[0] == 3  # the job took no more than the free slots
        wait_until("a beat with the running work", lambda: "beat" in service.calls)
        row = wait_until(
            "the activity",
            lambda: Worker.objects.filter(name=runtime.name, activity__running_count=3).first(),
        )
        assert {item["label"] for item in row.activity["running"]} == {"item 1", "item 2", "item 3"}
        assert row.activity["services"] == {"Service": {"connections": 3}}
        assert "3 running (peak 3)" in activity_summary(row.activity)
        release.set()  # slots free: the full pool asks for rounds until all ten are done
        wait_until("all ten done", lambda: runtime.activity()["counts"].get("done") == wanted)
    finally:
        release.set()
        runtime.stop()
        thread.join(timeout=30)
    assert max(seen) == 3
    assert service.calls[0] == "start" and service.calls[-1] == "stop"
    assert service.worker == runtime.name
    row = Worker.objects.get(name=runtime.name)
    assert row.stopped_at is not None and row.state() == "stopped"
    assert row.concurrency == 3


def test_work_ending_at_any_moment_never_stalls_the_rounds() -> None:
    """Items end while a round is running, between its slots() and its submit: the rounds go
    on until nothing is due, with no tick to fall back on."""
    import random

    wanted, submitted = 60, [0]

    def job(ctx: JobContext) -> None:
        take = min(ctx.slots(), wanted - submitted[0])
        time.sleep(0.005)  # a claim takes a while: items end meanwhile
        for _ in range(take):
            submitted[0] += 1
            ctx.submit(lambda: time.sleep(random.uniform(0, 0.01)), label="item")

    runtime = WorkerRuntime(jobs=[job], concurrency=4, tick=3600)
    thread = _running(runtime)
    try:
        wait_until(
            "every item done",
            lambda: runtime.activity()["counts"].get("done") == wanted,
            timeout=60,
        )
    finally:
        runtime.stop()
        thread.join(timeout=30)


def test_a_wake_up_from_this_process_starts_a_round_at_once() -> None:
    rounds: list[float] = []

    def job(ctx: JobContext) -> None:
        rounds.append(time.monotonic())

    runtime = WorkerRuntime(jobs=[job], concurrency=1, tick=3600)
    thread = _running(runtime)
    try:
        wait_until("the first round", lambda: rounds)
        with transaction.atomic():
            wakeup_notify("mailboxes")
            time.sleep(0.2)
            assert len(rounds) == 1  # not before the commit: the change is not visible yet
        wait_until("the woken round", lambda: len(rounds) == 2)
    finally:
        runtime.stop()
        thread.join(timeout=30)


def test_a_stop_abandons_work_that_does_not_finish_in_time() -> None:
    forever = threading.Event()

    def job(ctx: JobContext) -> None:
        if ctx.slots():
            ctx.submit(lambda: forever.wait(60), label="stuck")

    runtime = WorkerRuntime(jobs=[job], concurrency=1, tick=3600, stop_timeout=0.5)
    thread = _running(runtime)
    try:
        wait_until("the stuck item", lambda: runtime.running() == ["stuck"])
        runtime.stop()
        thread.join(timeout=30)
        assert not thread.is_alive()  # stopped, the stuck item abandoned
        assert Worker.objects.get(name=runtime.name).stopped_at is not None
    finally:
        forever.set()


@pytest.mark.integration
def test_worker_once_prints_what_it_fetched(dovecot, capsys) -> None:
    user, password = next(iter(PASSWORD_USERS.items()))
    mailbox = mailbox_save(
        mailbox=Mailbox(
            name="once-box",
            protocol="imap",
            direction="incoming",
            host="127.0.0.1",
            port=dovecot.imap_port,
            security="none",
            username=user,
            auth_method="password",
        ),
        password=password,
    )
    dovecot.deliver(user, b"Message-ID: <once@example.test>\r\n\r\nonce\r\n")
    call_command("worker", "--once")
    # Its INBOX is the session's Dovecot's: other tests' mail is there too.
    assert re.search(r"^once-box: [1-9]\d* new message\(s\)$", capsys.readouterr().out, re.M)
    assert mailbox.messages.filter(message_id="<once@example.test>").exists()
    call_command("worker", "--once")  # not due again before its interval
    assert "once-box" not in capsys.readouterr().out


def test_the_admin_lists_the_workers_read_only(admin_client) -> None:
    runtime = WorkerRuntime(jobs=[], concurrency=2, tick=3600)
    thread = _running(runtime)
    try:
        page = admin_client.get("/admin/worker/worker/")
        assert page.status_code == 200
        text = page.content.decode()
        assert runtime.name in text and "alive" in text
        assert admin_client.get("/admin/worker/worker/add/").status_code == 403
    finally:
        runtime.stop()
        thread.join(timeout=30)
    assert "stopped" in admin_client.get("/admin/worker/worker/").content.decode()


CANARY = "Canary-w0rker-Secret-7f3a"


@pytest.mark.integration
def test_no_secret_reaches_the_activity_the_admin_or_the_log(dovecot, admin_client, caplog):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    mailbox_save(
        mailbox=Mailbox(
            name="canary-box",
            protocol="imap",
            direction="incoming",
            host="127.0.0.1",
            port=closed,
            security="none",
            username="pat@example.test",
            auth_method="password",
        ),
        password=CANARY,
    )
    from mailgrant.mailboxes.jobs import mailboxes_leases_renew, mailboxes_poll_due

    runtime = WorkerRuntime(
        jobs=[mailboxes_poll_due], renewals=[mailboxes_leases_renew], tick=3600, beat=0.1
    )
    thread = _running(runtime)
    try:
        wait_until("the failed fetch", lambda: runtime.activity()["counts"].get("done"))
        runtime.beat_once()
    finally:
        runtime.stop()
        thread.join(timeout=30)
    row = Worker.objects.get(name=runtime.name)
    assert row.activity["jobs"]["mailboxes_poll_due"]["claimed"] == 1
    page = admin_client.get("/admin/worker/worker/").content.decode()
    assert CANARY not in str(row.activity) and CANARY not in page
    assert CANARY not in caplog.text
