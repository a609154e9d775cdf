"""`mailgrant worker` SIGKILLed in the middle of deliveries, again and again: no event is
lost, and every duplicate a receiver gets carries the original's webhook-id (and body)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.notify.receiver import Receiver, answer
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
MAILGRANT = str(Path(sys.executable).with_name("mailgrant"))
EVENTS = 1500
KILLS = 10


def _env(home: Path, database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAILGRANT_", "DJANGO_"))}
    env.update(
        MAILGRANT_HOME=str(home),
        MAILGRANT_DATABASE_URL=database_url,
        MAILGRANT_WORKER_LEASE="5",
        MAILGRANT_WEBHOOK_ALLOW_PRIVATE="true",  # the receiver is on 127.0.0.1
        MAILGRANT_WEBHOOK_IN_FLIGHT="16",
        PYTHONPATH=str(ROOT),
        DJANGO_SETTINGS_MODULE="mailgrant.config.settings",
    )
    return env


def _run(env: dict[str, str], *args: str) -> Any:
    done = subprocess.run(
        args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _fleet(env: dict[str, str], *args: str) -> Any:
    out = _run(env, sys.executable, "-m", "tests.notify.hooks_fleet", *args)
    return json.loads(out.strip().splitlines()[-1])


def _slow_ok(handler: Any, n: int) -> None:
    time.sleep(0.01)  # deliveries in flight when the kill comes
    answer(200)(handler, n)


def test_a_worker_killed_again_and_again_loses_no_event(tmp_path, database_url) -> None:
    env = _env(tmp_path, database_url)
    _run(env, MAILGRANT, "migrate", "--noinput")
    with Receiver() as receiver:
        receiver.behaviours["/hook"] = _slow_ok
        made = _fleet(env, "setup", receiver.url("/hook"), str(EVENTS))
        receiver.secrets["/hook"] = made["secret"]
        uids = set(made["uids"])
        assert len(uids) == EVENTS
        kills = 0
        for kills in range(1, KILLS + 1):  # counted for the message below
            before = len(receiver.received)
            log = (tmp_path / f"worker-{kills}.log").open("w")
            worker = subprocess.Popen(
                [MAILGRANT, "worker", "--concurrency", "8", "--tick", "0.5"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
            try:
                wait_until(
                    "the worker delivering",
                    lambda before=before: len(receiver.received) >= before + 40,
                    timeout=120,
                )
            finally:
                worker.kill()  # SIGKILL: no goodbye, its claims run out with their lease
                worker.wait(timeout=30)
                log.close()
        assert kills == KILLS
        assert len({r.id for r in receiver.received}) < EVENTS, "all delivered before the kills"
        final = subprocess.Popen(
            [MAILGRANT, "worker", "--concurrency", "8", "--tick", "0.5"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=(tmp_path / "worker-final.log").open("w"),
        )
        try:
            wait_until(
                "every event delivered",
                lambda: _fleet(env, "report")["states"] == {"delivered": EVENTS},
                timeout=240,
            )
        finally:
            final.terminate()
            final.wait(timeout=30)
        assert not receiver.rejected
        got = list(receiver.received)
    first: dict[str, Any] = {}
    for received in got:
        assert received.id in uids and received.payload["id"] == received.id
        if received.id in first:
            assert received.payload["data"] == first[received.id]["data"]
        first.setdefault(received.id, received.payload)
    assert set(first) == uids  # no event lost
