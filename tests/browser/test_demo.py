"""`make demo` as a newcomer uses it, in Chromium: the demo starts its peers and mailgrant, the
newcomer signs in with the printed login, presses Authorize on the incoming mailbox, signs in at
the provider with its demo account, watches mail arrive, revokes the grant at the provider from
the demo's terminal and sees the dashboard say so; `q` stops everything the demo started."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.peers import require
from tests.servers.dovecot import dovecot_available
from tests.servers.oidc import oidc_available
from tests.servers.ports import free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


class DemoProcess:
    def __init__(self, home: Path) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "demo.run", "--listen", f"127.0.0.1:{self.port}",
             "--home", str(home), "--every", "1", "--token-ttl", "30"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, pattern: str, timeout: float = 120) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, self.output)
            if found:
                return found
            if self.process.poll() is not None:
                break
            time.sleep(0.2)
        raise AssertionError(f"no {pattern!r} in the demo's output:\n{self.output[-4000:]}")

    def type(self, text: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(text)
        self.process.stdin.flush()


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[DemoProcess]:
    for available, reason in (oidc_available(), dovecot_available()):
        require(available, reason)
    process = DemoProcess(tmp_path / "demo")
    try:
        yield process
    finally:
        if process.process.poll() is None:
            process.process.terminate()
            process.process.wait(timeout=60)


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _eventually(check: Any, *, timeout: float, what: str, demo: DemoProcess) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(1)
    raise AssertionError(f"{what} did not happen within {timeout:g} s:\n{demo.output[-6000:]}")


def test_make_demo_shows_the_whole_product(demo: DemoProcess, page: Any) -> None:
    admin = demo.wait_for(r"Admin:\s+(\S+)").group(1)
    password = demo.wait_for(r"Login:\s+admin / (\S+)").group(1)
    provider = demo.wait_for(r"Provider:\s+(\S+)").group(1)
    account, account_password = demo.wait_for(r"demo account: (\S+) / (\S+)\)").groups()
    provider_port = int(provider.rsplit(":", 1)[1])

    page.goto(f"{admin}login/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    page.wait_for_url(admin)

    page.goto(f"{admin}mailboxes/mailbox/")
    page.click("text=support")
    page.click("button:has-text('Authorize'), input[value='Authorize']")
    page.wait_for_selector("input[name=login]")  # the provider's own login page
    page.fill("input[name=login]", account)
    page.fill("input[name=password]", account_password)
    page.click("button[type=submit]")
    page.click("button[autofocus], button[type=submit]")  # consent
    page.wait_for_url(re.compile(re.escape(admin)))
    assert "Authorized as" in page.content() or account in page.content()

    def mail_arrived() -> bool:
        page.goto(f"{admin}mailboxes/message/")
        return "Demo ticket #" in page.content()

    _eventually(mail_arrived, timeout=90, what="a delivered message showing in Messages", demo=demo)

    demo.type("r\n")
    demo.wait_for(r"Revoked at the provider")

    def dashboard_says_so() -> bool:
        page.goto(admin)
        return page.is_visible("button:has-text('Re-authorize')")

    _eventually(
        dashboard_says_so, timeout=150, what="the dashboard naming the revoked grant", demo=demo
    )
    assert "alice@example.test" in page.content()  # the grant, by its account

    demo.type("q\n")
    assert demo.process.wait(timeout=60) == 0
    assert "Demo stopped" in demo.output
    assert not _listening(demo.port)
    assert not _listening(provider_port)
