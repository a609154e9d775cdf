"""The IDLE watcher on its own (no Django): against real Dovecot a refused login is an error
event with the server's words and never the password, and the watcher tries again with a
backoff; against scripted servers, one without IDLE and one that refuses the folder are
clear errors, and a token is asked for in a thread, never on the loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from typing import Any

import pytest

from mailgrant.mailboxes.protocol.idle import IdleEvent, IdleSettings, IdleTarget, IdleWatcher
from mailgrant.mailboxes.protocol.transport import (
    Endpoint,
    PasswordLogin,
    TokenLogin,
)
from tests.servers.refusing_mail import RefusingImap

CANARY = 'idle-"canary"-pass\\word'
FAST = IdleSettings(reconnect_base_seconds=0.05, reconnect_cap_seconds=0.1)


def _events(
    target: IdleTarget, *, until: int = 2, timeout: float = 30
) -> tuple[list[IdleEvent], Any]:
    events: list[IdleEvent] = []

    async def main() -> IdleWatcher:
        done = asyncio.Event()

        async def on_event(event: IdleEvent) -> None:
            events.append(event)
            if len(events) >= until:
                done.set()

        watcher = IdleWatcher(target, on_event, settings=FAST)
        task = asyncio.create_task(watcher.run())
        try:
            await asyncio.wait_for(done.wait(), timeout)
        finally:
            watcher.stop()
            await asyncio.gather(task, return_exceptions=True)
        return watcher

    # A thread of its own: a browser test before this one may have left Playwright's event
    # loop running on this thread, where asyncio.run refuses to start another.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        watcher = pool.submit(asyncio.run, main()).result()
    return events, watcher


@pytest.mark.integration
def test_a_refused_password_is_an_error_without_the_password(dovecot, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    target = IdleTarget(
        1,
        Endpoint("127.0.0.1", dovecot.imap_port, "none", 10),
        PasswordLogin("pat@example.test", CANARY),
    )
    events, watcher = _events(target)
    assert [e.kind for e in events] == ["error", "error"]  # tried again, after a backoff
    assert "refused the password login" in events[0].message
    assert "AUTHENTICATIONFAILED" in events[0].message
    assert watcher.stats.failures == 2 and not watcher.stats.connected
    seen = " ".join(e.message for e in events) + caplog.text + watcher.stats.last_error
    assert CANARY not in seen and "canary" not in seen


def test_a_server_without_idle_or_without_the_folder_is_a_clear_error() -> None:
    with RefusingImap(caps="IMAP4rev1 AUTH=PLAIN") as server:
        endpoint = Endpoint("127.0.0.1", server.port, "none", 10)
        events, _ = _events(IdleTarget(1, endpoint, PasswordLogin("u", "p")))
        assert [e.kind for e in events] == ["changed", "error"]
        assert events[1].message == "The server does not offer IDLE."
    with RefusingImap() as server:
        server.replies["EXAMINE"] = "NO [NONEXISTENT] Mailbox doesn't exist: Nope"
        endpoint = Endpoint("127.0.0.1", server.port, "none", 10)
        events, _ = _events(IdleTarget(1, endpoint, PasswordLogin("u", "p"), folder="Nope"))
        assert events[0].kind == "error" and "Cannot open folder 'Nope'" in events[0].message
        assert "NONEXISTENT" in events[0].message


def test_the_token_is_taken_off_the_loop() -> None:
    threads: list[str] = []

    def get_token() -> str:
        threads.append(threading.current_thread().name)
        return "a-token"

    with RefusingImap() as server:
        endpoint = Endpoint("127.0.0.1", server.port, "none", 10)
        target = IdleTarget(
            1, endpoint, TokenLogin("u@example.test", "XOAUTH2", get_token), token_expires_at=None
        )
        events, watcher = _events(target, until=1)
    assert events[0].kind == "changed" and watcher.stats.connects == 1
    assert threads and threads[0] != threading.main_thread().name
