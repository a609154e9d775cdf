"""`mailgrant mailbox ...` as a user runs it: a real process against the real Dovecot."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from tests.mailboxes.conftest import message
from tests.servers.dovecot import PASSWORD_USERS

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

MAILGRANT = str(Path(sys.executable).with_name("mailgrant"))


@pytest.fixture
def run():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAILGRANT_", "DJANGO_"))}
    env.update(
        MAILGRANT_HOME=str(settings.MAILGRANT_HOME),
        MAILGRANT_DATABASE_URL=f"sqlite:///{connection.settings_dict['NAME']}",
    )

    def call(*args: str, input: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [MAILGRANT, "mailbox", *args],
            env=env,
            input=input,
            capture_output=True,
            text=True,
            timeout=120,
        )

    call.env = env  # type: ignore[attr-defined]
    return call


def _add_password_mailbox(
    run, name: str, port: int, *extra: str, password: str, username: str = "pat@example.test"
):
    """`mailgrant mailbox add` for a password login on the test Dovecot (password on stdin)."""
    return run(
        "add",
        "--name",
        name,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--security",
        "none",
        "--username",
        username,
        "--auth-method",
        "password",
        "--password-file",
        "-",
        *extra,
        input=password,
    )


def test_add_test_fetch_send_list(run, dovecot) -> None:
    user, password = next(iter(PASSWORD_USERS.items()))
    added = _add_password_mailbox(
        run, "cli-in", dovecot.imap_port, password=password + "\n", username=user
    )
    assert added.returncode == 0, added.stderr
    tested = run("test", "cli-in")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "Connected and logged in" in tested.stdout and password not in tested.stdout
    dovecot.deliver(user, message(1, extra="cli"))
    fetched = run("fetch", "cli-in")
    assert fetched.returncode == 0, fetched.stderr
    assert "new message(s)" in fetched.stdout
    assert fetched.stderr == ""  # no progress bar when not on a terminal
    again = json.loads(run("fetch", "cli-in", "--json").stdout)
    assert again["fetched"] == 0 and again["already_stored"] >= 1

    out = _add_password_mailbox(
        run,
        "cli-out",
        dovecot.submission_port,
        "--direction",
        "outgoing",
        "--protocol",
        "smtp",
        password=password,
        username=user,
    )
    assert out.returncode == 0, out.stderr
    sent = run(
        "send",
        "cli-out",
        "--to",
        "bob@example.test",
        "--subject",
        "From the CLI",
        "--text",
        "hello",
    )
    assert sent.returncode == 0, sent.stderr
    assert "Sent to bob@example.test: 250" in sent.stdout
    assert any(b"Subject: From the CLI" in raw for raw in dovecot.maildir("bob@example.test"))

    listing = json.loads(run("list", "--json").stdout)
    assert {m["name"] for m in listing} == {"cli-in", "cli-out"}
    assert all(password not in json.dumps(m) for m in listing)


def test_errors_and_exit_codes(run, dovecot) -> None:
    missing = run("fetch", "nope")
    assert missing.returncode == 1 and "No mailbox named 'nope'" in missing.stderr
    bad = run(
        "add",
        "--name",
        "x",
        "--host",
        "h",
        "--port",
        "70000",
        "--username",
        "u",
        "--auth-method",
        "password",
    )
    assert bad.returncode == 1 and "port" in bad.stderr
    usage = run("add", "--name", "x")
    assert usage.returncode == 2
    _add_password_mailbox(run, "refused", dovecot.imap_port, password="wrong-password")
    refused = run("test", "refused")
    assert refused.returncode == 1 and "refused the password login" in refused.stdout
    assert "wrong-password" not in refused.stdout + refused.stderr


def test_fetch_shows_progress_on_a_terminal(run, dovecot) -> None:
    import shlex

    user, password = next(iter(PASSWORD_USERS.items()))
    _add_password_mailbox(run, "tty", dovecot.imap_port, password=password, username=user)
    dovecot.deliver(user, message(1, extra="tty"), message(2, extra="tty"))
    # util-linux `script` gives the command a pseudo-terminal, as a person at a shell has.
    command = shlex.join([MAILGRANT, "mailbox", "fetch", "tty"])
    shown = subprocess.run(
        ["script", "-qec", command, "/dev/null"],
        env=run.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shown.returncode == 0, shown.stdout
    # The bar, only on a terminal (pat's inbox may hold earlier tests' messages too).
    assert re.search(r"  fetched [2-9]\d* message\(s\), \d+\.\d MB", shown.stdout)
