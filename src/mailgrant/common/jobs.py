"""What a background job gets from the worker that runs it (worker.runtime).

A job is a function of one `JobContext`, run once per round: it claims what is due (at most
`slots()` items, common.claims) and hands each item's work to `submit`, which runs it in the
worker's bounded pool. The job returns at once; the work's outcome is recorded by the service
it calls, never by the worker."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

log = logging.getLogger(__name__)


class JobContext(Protocol):
    @property
    def worker(self) -> str:
        """The worker's name: the holder of the claims the job takes."""

    @property
    def now(self) -> datetime:
        """The round's time."""

    def slots(self) -> int:
        """How many more items the pool takes now (0: claim nothing this round)."""

    def submit(self, work: Callable[[], Any], *, label: str) -> None:
        """Run `work` in the pool; `label` (e.g. "mailbox 12") names it in the worker's
        activity. An exception it raises is logged, never propagated."""


@dataclass
class InlineContext:
    """Runs each submitted item at once, in order: `mailgrant worker --once` and tests."""

    worker: str
    now: datetime
    capacity: int = 1_000_000
    results: list[Any] = field(default_factory=list)

    def slots(self) -> int:
        return self.capacity - len(self.results)

    def submit(self, work: Callable[[], Any], *, label: str) -> None:
        try:
            self.results.append(work())
        except Exception as exc:
            log.exception("%s failed", label)
            self.results.append(exc)
