"""MAILGRANT_HOME, the SQLite database with its -wal and -shm, and the message store are the
mailgrant user's alone, whatever umask `mailgrant` is started with; a home that others could
enter is tightened at start-up, with a warning."""

import os
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.mailboxes.conftest import message
from tests.servers.dovecot import PASSWORD_USERS
from tests.servers.dovecot_rawlog import rawlog_dovecot

MAILGRANT = str(Path(sys.executable).with_name("mailgrant"))
USER, PASSWORD = next(iter(PASSWORD_USERS.items()))


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAILGRANT_", "DJANGO_"))}
    env.update(MAILGRANT_HOME=str(home))
    return env


def _run(home: Path, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    """`mailgrant ARGS` started with the most permissive umask there is."""
    result = subprocess.run(
        [MAILGRANT, *args],
        env=_env(home),
        capture_output=True,
        text=True,
        input=input,
        timeout=120,
        umask=0,
    )
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.integration
def test_a_fresh_home_its_database_and_the_store_are_private(tmp_path: Path) -> None:
    home = tmp_path / "fresh" / "home"
    _run(home, "migrate", "--noinput")
    database = home / "mailgrant.sqlite3"
    # A process with the database open: SQLite's -wal and -shm exist while it lives.
    holder = subprocess.Popen(
        [
            MAILGRANT,
            "shell",
            "--no-imports",
            "-c",
            "import sys; from django.db import connection; "
            "connection.cursor().execute('SELECT count(*) FROM django_session'); "
            "print('open', flush=True); sys.stdin.read()",
        ],
        env=_env(home),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        umask=0,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        files = [database, database.with_name(database.name + "-wal")]
        files.append(database.with_name(database.name + "-shm"))
        assert {f.name: oct(_mode(f)) for f in files} == {f.name: "0o600" for f in files}
    finally:
        holder.communicate("", timeout=60)
    assert oct(_mode(home)) == "0o700"
    assert {p.name: oct(_mode(p)) for p in home.iterdir() if p.is_dir()} == {
        p.name: "0o700" for p in home.iterdir() if p.is_dir()
    }
    assert {p.name: oct(_mode(p)) for p in home.iterdir() if p.is_file()} == {
        p.name: "0o600" for p in home.iterdir() if p.is_file()
    }

    # The store: every folder a fetch makes 0700, every message 0600.
    with rawlog_dovecot() as dovecot:
        dovecot.deliver(USER, message(1, extra=uuid.uuid4().hex))
        _run(
            home,
            *("mailbox", "add", "--name", "in", "--host", "127.0.0.1"),
            *("--port", str(dovecot.imap_port), "--security", "none", "--username", USER),
            *("--auth-method", "password", "--password-stdin"),
            input=PASSWORD + "\n",
        )
        fetched = _run(home, "mailbox", "fetch", "in")
    assert "1 new message(s)" in fetched.stdout, fetched.stdout
    store = home / "messages"
    folders = [store, *(p for p in store.rglob("*") if p.is_dir())]
    messages = list(store.rglob("*.eml"))
    assert len(folders) >= 4 and len(messages) == 1  # store/<mailbox>/<folder>/<uidvalidity>
    assert {str(p): oct(_mode(p)) for p in folders} == {str(p): "0o700" for p in folders}
    assert oct(_mode(messages[0])) == "0o600"


def test_an_existing_open_home_is_tightened_with_a_warning(tmp_path: Path) -> None:
    home = tmp_path / "home"
    _run(home, "migrate", "--noinput")
    database = home / "mailgrant.sqlite3"
    home.chmod(0o755)
    database.chmod(0o644)
    checked = _run(home, "check")
    assert "MAILGRANT_HOME" in checked.stderr and "accessible to other users" in checked.stderr
    assert "0755" in checked.stderr and str(home) in checked.stderr
    assert oct(_mode(home)) == "0o700" and oct(_mode(database)) == "0o600"
    again = _run(home, "check")
    assert "accessible" not in again.stderr  # said once, when it was so
