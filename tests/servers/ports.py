"""Free loopback ports for the test servers, from a block of its own for each test process.

A port the kernel hands out for `bind(0)` comes from the ephemeral range, where the machine's
outgoing connections take their local ports too: one probed free could be taken before the
server bound it. These blocks lie below that range (Linux's starts at 32768), one for each
pytest-xdist worker so that the processes of one run never meet, and each process starts at a
random place in its block so that two runs side by side rarely do. No Django here."""

from __future__ import annotations

import itertools
import os
import random
import re
import socket
import threading

FIRST, BLOCK, BLOCKS = 20_000, 600, 20

_lock = threading.Lock()
_next: itertools.cycle[int] | None = None


def _block() -> range:
    worker = re.fullmatch(r"gw(\d+)", os.environ.get("PYTEST_XDIST_WORKER", "gw0"))
    index = int(worker.group(1)) if worker else 0
    start = FIRST + (index % BLOCKS) * BLOCK
    return range(start, start + BLOCK)


def free_port() -> int:
    """A loopback port nothing listens on now, of this process's block."""
    global _next
    with _lock:
        if _next is None:
            block = list(_block())
            offset = random.randrange(len(block))
            _next = itertools.cycle(block[offset:] + block[:offset])
        for _ in range(BLOCK):
            port = next(_next)
            with socket.socket() as probe:
                try:
                    probe.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free port left in this test process's block")
