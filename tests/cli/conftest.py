"""Two ways to run a command: in this process (Django's call_command, output captured) and as
the user does (`.venv/bin/mailgrant` in a subprocess on the test database, for exit codes)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection

MAILGRANT = str(Path(sys.executable).with_name("mailgrant"))


@dataclass
class Output:
    stdout: str
    stderr: str


class Stdin(io.StringIO):
    """Text on stdin, from a terminal or not."""

    def __init__(self, text: str, *, tty: bool) -> None:
        super().__init__(text)
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Any:
    """`cli("client", "add", ...)`: the command's stdout and stderr (and whatever reached the
    process's own streams, such as a confirmation prompt); a failure raises CommandError."""

    def run(*args: str, stdin: str = "", tty: bool = False) -> Output:
        out, err = io.StringIO(), io.StringIO()
        monkeypatch.setattr(sys, "stdin", Stdin(stdin, tty=tty))
        call_command(*args, stdout=out, stderr=err)
        captured = capsys.readouterr()
        return Output(out.getvalue() + captured.out, err.getvalue() + captured.err)

    return run


@pytest.fixture
def mailgrant(transactional_db: Any) -> Any:
    """`mailgrant("client", "list")`: a real process on this test's (committed) database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAILGRANT_", "DJANGO_"))}
    env.update(
        MAILGRANT_HOME=str(settings.MAILGRANT_HOME),
        MAILGRANT_BASE_URL=settings.MAILGRANT_BASE_URL,
        MAILGRANT_DATABASE_URL=f"sqlite:///{connection.settings_dict['NAME']}",
    )

    def run(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [MAILGRANT, *args], env=env, input=input, capture_output=True, text=True, timeout=120
        )

    run.env = env  # type: ignore[attr-defined]
    return run


def assert_failed(result: subprocess.CompletedProcess[str], *words: str) -> None:
    """Exit status 1 and one clear line on stderr: no traceback, nothing on stdout."""
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stdout == ""
    for word in words:
        assert word in result.stderr, result.stderr


def assert_usage(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "usage:" in result.stderr and "Traceback" not in result.stderr
    for word in words:
        assert word in result.stderr, result.stderr
