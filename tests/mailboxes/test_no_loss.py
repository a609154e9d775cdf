"""No loss, no duplicates: `mailgrant mailbox fetch` killed at random points, again and again.
After every kill, each message moved on the server is already stored here; at the end every
message is stored exactly once, byte for byte."""

import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from mailgrant.mailboxes.models import Mailbox, Message
from mailgrant.mailboxes.store import store_root
from tests.mailboxes.conftest import message

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

MAILGRANT = str(Path(sys.executable).with_name("mailgrant"))
RUNS = 20
PER_RUN = 40


def _message_ids(raws: list[bytes]) -> set[str]:
    ids = set()
    for raw in raws:
        for line in raw.splitlines():  # Maildir files end lines with LF, the wire with CRLF
            if line.lower().startswith(b"message-id:"):
                ids.add(line.split(b":", 1)[1].strip().decode())
    return ids


def _files(folder: Path) -> int:
    """Message files under the mailbox's store folder (a few directories deep)."""
    total = 0
    for _, _, names in os.walk(folder):
        total += len(names)
    return total


def _wait_for_files(folder: Path, count: int, process: subprocess.Popen) -> None:
    start = _files(folder)
    deadline = time.monotonic() + 30
    while process.poll() is None and time.monotonic() < deadline:
        if _files(folder) - start >= count:
            return
        time.sleep(0.0005)


def _stored() -> dict[str, list[Message]]:
    found: dict[str, list[Message]] = {}
    for row in Message.objects.all():
        found.setdefault(row.message_id, []).append(row)
    return found


def test_killed_fetches_lose_nothing_and_duplicate_nothing(dovecot, make_mailbox, mail_grant):
    user = mail_grant.account
    mailbox = make_mailbox(grant=mail_grant, username=user, post_fetch_action="move:Archive")
    # Left by earlier tests (their index rows are gone): not this test's to check.
    already = _message_ids(dovecot.maildir(user) + dovecot.maildir(user, "Archive"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAILGRANT_", "DJANGO_"))}
    env.update(
        MAILGRANT_HOME=str(settings.MAILGRANT_HOME),
        MAILGRANT_FETCH_BATCH="4",
        MAILGRANT_DATABASE_URL=f"sqlite:///{connection.settings_dict['NAME']}",
    )
    rng = random.Random(20261128)
    delivered: dict[str, bytes] = {}
    mid_fetch_kills = 0
    checked_moves = 0
    for run in range(RUNS):
        tag = uuid.uuid4().hex[:6]
        batch = [
            message(i, size=rng.choice([0, 2000, 20000, 200000]), extra=f"{run}-{tag}")
            for i in range(PER_RUN)
        ]
        dovecot.deliver(user, *batch)
        delivered.update({f"<m{i}-{run}-{tag}@example.test>": raw for i, raw in enumerate(batch)})
        files_before = _files(store_root() / str(mailbox.pk))
        fetch = subprocess.Popen(
            [MAILGRANT, "mailbox", "fetch", mailbox.name],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        folder = store_root() / str(mailbox.pk)
        if run % 4 == 3:
            time.sleep(rng.uniform(0.1, 0.8))  # anywhere: start-up, login, listing, fetching
        elif run % 2:
            _wait_for_files(folder, rng.randint(1, PER_RUN - 1), fetch)  # after the k-th file
        else:
            _wait_for_files(folder, 1, fetch)  # anywhere once fetching has begun
            time.sleep(rng.uniform(0, 0.3))
        killed = fetch.poll() is None
        if killed:
            fetch.send_signal(signal.SIGKILL)
        fetch.wait(timeout=60)
        if killed:
            # The killed fetch's claim on the mailbox would run out after its lease
            # (MAILGRANT_WORKER_LEASE, tests/mailboxes/test_fetch_now.py); the next run does not
            # wait for it.
            Mailbox.objects.filter(pk=mailbox.pk).update(claimed_by="", claimed_until=None)
        # Whatever the server moved to Archive must already be stored (row and file).
        stored = _stored()
        moved = _message_ids(dovecot.maildir(user, "Archive")) - already
        checked_moves += len(moved)
        this_run = sum(1 for i in range(PER_RUN) if f"<m{i}-{run}-{tag}@example.test>" in stored)
        mid_fetch_kills += (
            killed
            and this_run < PER_RUN
            and (this_run > 0 or _files(store_root() / str(mailbox.pk)) > files_before)
        )
        for message_id in moved:
            assert message_id in stored, f"run {run}: {message_id} moved before it was stored"
            assert (store_root() / stored[message_id][0].path).exists()

    final = subprocess.run(
        [MAILGRANT, "mailbox", "fetch", mailbox.name],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert final.returncode == 0, final.stderr
    assert checked_moves > 0, "the moved-before-stored check must have had moves to check"
    assert mid_fetch_kills >= 5, "the kills must land mid-fetch often enough to mean something"

    stored = _stored()
    for message_id, raw in delivered.items():
        rows = stored.get(message_id, [])
        assert len(rows) == 1, f"{message_id} stored {len(rows)} times"
        assert (store_root() / rows[0].path).read_bytes().endswith(raw)
    # Nothing lost on the server either: every message is in Archive, none left behind.
    archive = _message_ids(dovecot.maildir(user, "Archive"))
    assert set(delivered) <= archive
    assert not set(delivered) & _message_ids(dovecot.maildir(user))
    assert not Message.objects.filter(post_action_done=False).exists()
