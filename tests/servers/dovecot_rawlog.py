"""The test Dovecot recording each post-login session's raw bytes (Dovecot's rawlog): what a
client sent, byte for byte, before Dovecot's own processing (its submission relay rewrites
line ends). No Django here."""

from __future__ import annotations

import contextlib
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

from tests.peers import require
from tests.servers.dovecot import DovecotServer, dovecot_available


class RawlogDovecot(DovecotServer):
    @property
    def rawlog_root(self) -> Path:
        return self.root / "rawlog"

    def _config(self) -> str:
        self.rawlog_root.mkdir(exist_ok=True)
        shutil.chown(self.rawlog_root, "dovecot", "dovecot")  # mail processes run as dovecot
        return super()._config() + f"rawlog_dir = {self.rawlog_root}\n"

    def received(self) -> list[bytes]:
        """What clients sent after logging in, one session a file, oldest first."""
        return [p.read_bytes() for p in sorted(self.rawlog_root.glob("*.in"))]

    def forget(self) -> None:
        for path in self.rawlog_root.glob("*"):
            path.unlink()


_STAMP = re.compile(rb"(^|\n)\d+\.\d+ ")


def data_sent(session: bytes) -> list[bytes]:
    """The messages a client sent in one rawlog'd submission session (DATA, dot-stuffing and
    all, up to the final dot line), without the rawlog's per-line timestamps."""
    sent = _STAMP.sub(rb"\1", session)
    messages = []
    for chunk in re.split(rb"(?im)^data\r\n", sent)[1:]:
        end = chunk.find(b"\r\n.\r\n")
        messages.append(chunk[: end + 2] if end >= 0 else chunk)
    return messages


@contextlib.contextmanager
def rawlog_dovecot() -> Iterator[RawlogDovecot]:
    """A Dovecot of its own for password logins (PASSWORD_USERS): no OpenID provider needed."""
    available, reason = dovecot_available()
    require(available, reason)
    with RawlogDovecot(introspection_url="http://127.0.0.1:9/unused") as server:
        yield server


def wait_for_data(server: RawlogDovecot, count: int) -> list[bytes]:
    """The first `count` messages clients sent (the session's rawlog may trail the reply)."""
    deadline = time.monotonic() + 30
    while True:
        sent = [m for session in server.received() for m in data_sent(session)]
        if len(sent) >= count or time.monotonic() > deadline:
            return sent
        time.sleep(0.05)
