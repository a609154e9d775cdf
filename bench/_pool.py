"""A JobContext over a bounded thread pool, as the worker's (worker.runtime), for benchmarks that
run a job in rounds: counts what is done and keeps what failed. make bench skips this file."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any


class PoolContext:
    """`failure(result)`: why an item's result is a failure ("" when it is not)."""

    def __init__(
        self, pool: ThreadPoolExecutor, capacity: int, *, failure: Callable[[Any], str]
    ) -> None:
        self.worker = "bench"
        self.now: Any = None
        self.pool = pool
        self.capacity = capacity
        self.failure = failure
        self.busy = 0
        self.done = 0
        self.failed: list[str] = []
        self.lock = threading.Lock()

    def slots(self) -> int:
        with self.lock:
            return self.capacity - self.busy

    def submit(self, work: Any, *, label: str) -> None:
        with self.lock:
            self.busy += 1

        def run() -> None:
            from django.db import close_old_connections

            try:
                # As the worker's pool: a connection is kept between items where CONN_MAX_AGE
                # keeps it (SQLite), not opened again for every item.
                close_old_connections()
                problem = self.failure(work())
                if problem:
                    with self.lock:
                        self.failed.append(f"{label}: {problem}")
            except BaseException as exc:  # reported by the run
                with self.lock:
                    self.failed.append(f"{label}: {exc!r}")
            finally:
                close_old_connections()
                with self.lock:
                    self.busy -= 1
                    self.done += 1

        self.pool.submit(run)
