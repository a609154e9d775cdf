"""Waiting in tests for what a peer or a background thread does: bounded, never a timing
threshold. No Django here."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import pytest

T = TypeVar("T")


def wait_until(what: str, check: Callable[[], T], timeout: float = 60, *, every: float = 0.05) -> T:
    """`check()`'s first true answer, asked every `every` seconds; the test fails naming
    `what` once `timeout` has passed without one."""
    deadline = time.monotonic() + timeout
    while not (found := check()):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(every)
    return found
