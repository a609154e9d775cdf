"""The audit spool: every spooled row reaches the table exactly once, whatever stops when."""

import json
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.conf import settings

from mailgrant.common import audit_spool as spool_module
from mailgrant.common.audit import Actor, AuditTarget, audit_write
from mailgrant.common.audit_spool import AuditSpool
from mailgrant.common.models import AuditEvent, AuditSpoolMark

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]


def _row(n: int) -> list[object]:
    at = datetime(2026, 11, 28, 12, 0, n, tzinfo=UTC).isoformat()
    return [at, f"apikey:k{n}", None, "grant.token_issued", "oauth.grant", "7", "g", "ok", ""]


def _actors() -> list[str]:
    return sorted(AuditEvent.objects.values_list("actor", flat=True))


def test_spooled_rows_reach_the_table_once(tmp_path: Path) -> None:
    spool = AuditSpool(tmp_path)
    for n in range(3):
        assert spool.append(_row(n))
    assert AuditEvent.objects.count() == 0  # nothing in the table until a drain
    assert spool.drain() == 3
    assert spool.drain() == 0
    spool.append(_row(3))
    assert spool.drain() == 1
    assert _actors() == ["apikey:k0", "apikey:k1", "apikey:k2", "apikey:k3"]
    event = AuditEvent.objects.get(actor="apikey:k2")
    assert event.at == datetime(2026, 11, 28, 12, 0, 2, tzinfo=UTC)
    assert (event.action, event.target_type, event.target_id) == (
        "grant.token_issued",
        "oauth.grant",
        "7",
    )
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in tmp_path.glob("*.jsonl"))


def test_a_line_still_being_written_waits_for_its_end(tmp_path: Path) -> None:
    spool = AuditSpool(tmp_path)
    spool.append(_row(0))
    (path,) = tmp_path.glob("*.jsonl")
    line = (json.dumps(_row(1)) + "\n").encode()
    with path.open("ab") as file:
        file.write(line[:10])
    assert spool.drain() == 1
    with path.open("ab") as file:
        file.write(line[10:])
    assert spool.drain() == 1
    assert _actors() == ["apikey:k0", "apikey:k1"]


def test_final_drain_removes_the_file_and_later_rows_go_straight_in(tmp_path, monkeypatch) -> None:
    spool = AuditSpool(tmp_path)
    spool.append(_row(0))
    assert spool.drain(final=True) == 1
    assert not list(tmp_path.glob("*.jsonl")) and not AuditSpoolMark.objects.exists()
    assert spool.append(_row(1)) is False  # closed: the caller writes the row itself
    monkeypatch.setattr(spool_module, "_spool", spool)
    audit_write(
        actor=Actor("apikey:late"),
        action="grant.token_issued",
        target=AuditTarget("oauth.grant", "7", "g"),
    )
    assert _actors() == ["apikey:k0", "apikey:late"]


def test_audit_write_spools_in_a_serving_process(tmp_path, monkeypatch) -> None:
    spool = AuditSpool(tmp_path)
    monkeypatch.setattr(spool_module, "_spool", spool)
    audit_write(
        actor=Actor("apikey:a"),
        action="grant.token_issued",
        target=AuditTarget("oauth.grant", "7", "g"),
    )
    assert AuditEvent.objects.count() == 0
    spool.drain()
    assert _actors() == ["apikey:a"]


def test_a_file_already_partly_moved_goes_on_from_its_mark(tmp_path: Path) -> None:
    """As a drain that committed and then died before it removed the file leaves it."""
    lines = [json.dumps(_row(n)) + "\n" for n in range(4)]
    left = tmp_path / "999999-1-1.jsonl"
    left.write_text("".join(lines))
    AuditSpoolMark.objects.create(file=left.name, offset=len("".join(lines[:2]).encode()))
    assert AuditSpool(tmp_path).drain() == 2
    assert _actors() == ["apikey:k2", "apikey:k3"]
    assert not left.exists() and not AuditSpoolMark.objects.filter(file=left.name).exists()


def test_an_unreadable_line_is_skipped_not_fatal(tmp_path: Path, caplog) -> None:
    left = tmp_path / "999999-1-1.jsonl"
    good = json.dumps(_row(0))
    left.write_text(f"not json\n{good}\n[1, 2\n")
    assert AuditSpool(tmp_path).drain() == 1
    assert _actors() == ["apikey:k0"]
    assert "unreadable line" in caplog.text


def test_a_killed_process_rows_are_taken_over_once_it_is_gone(tmp_path: Path) -> None:
    """A real process spools and is SIGKILLed: while it lives its file is left alone, after
    its death the next drain moves every row, exactly once, and removes the file."""
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DJANGO_SETTINGS_MODULE": "mailgrant.config.settings",
        "MAILGRANT_HOME": str(tmp_path / "child-home"),  # it touches no database
    }
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(tmp_path)],
        env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "spooled"
        ours = AuditSpool(tmp_path)
        assert ours.drain() == 0  # alive: its lock holds
        assert AuditEvent.objects.count() == 0
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    assert ours.drain() == 50
    assert ours.drain() == 0
    assert AuditEvent.objects.filter(actor="apikey:child").count() == 50
    assert [p.name for p in tmp_path.glob("*.jsonl")] == [ours._name]


_CHILD = """
import sys, time
from pathlib import Path
import django
django.setup()
from mailgrant.common.audit_spool import AuditSpool
spool = AuditSpool(Path(sys.argv[1]))
for n in range(50):
    spool.append(["2026-11-28T12:00:00+00:00", "apikey:child", None, "grant.token_issued",
                  "oauth.grant", "7", "g", "ok", ""])
print("spooled", flush=True)
time.sleep(300)
"""


def test_the_spool_lives_in_mailgrant_home(monkeypatch) -> None:
    started = []
    monkeypatch.setattr(spool_module, "_spool", None)
    monkeypatch.setattr(spool_module.threading.Thread, "start", lambda self: started.append(self))
    monkeypatch.setattr(spool_module.atexit, "register", lambda *a: None)
    spool = spool_module.audit_spool_start()
    assert spool.folder == Path(settings.MAILGRANT_HOME) / "audit-spool"
    assert spool_module.audit_spool_start() is spool and len(started) == 1
    spool.drain(final=True)
