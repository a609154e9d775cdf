"""`mailgrant status`: exit codes for cron and Nagios (0 ok, 1 warning, 2 failing or needs
re-authorization, 3 unknown), from real objects in each health, as a table and as JSON."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from tests.cli.conftest import MAILGRANT
from tests.worker import world

pytestmark = pytest.mark.django_db(transaction=True)


def test_all_ok_exits_zero(mailgrant: Any, make_client: Any, make_grant: Any) -> None:
    world.beating_worker()
    make_grant(make_client(name="Microsoft 365"))
    world.mailbox(name="support")

    result = mailgrant("status")

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "mailgrant OK: all ok"
    assert "Workers:\n  host:1:start: last beat" in result.stdout


def test_no_worker_alive_exits_one(mailgrant: Any) -> None:
    world.mailbox(name="support")

    result = mailgrant("status")

    assert result.returncode == 1, result.stderr
    assert result.stdout.splitlines()[0] == "mailgrant WARNING: no worker alive"
    assert "mailgrant worker" in result.stdout


def test_a_warning_exits_one(mailgrant: Any, make_client: Any) -> None:
    world.beating_worker()
    world.warning(make_client(name="Microsoft 365"), hint="The client secret expires in 12 days.")

    result = mailgrant("status")

    assert result.returncode == 1, result.stderr
    assert result.stdout.splitlines()[0] == "mailgrant WARNING: 1 client warning"
    assert "fix: The client secret expires in 12 days." in result.stdout


def test_a_failing_mailbox_exits_two(mailgrant: Any) -> None:
    world.beating_worker()
    world.failing(world.mailbox(name="support"), message="[Errno 111] Connection refused")

    result = mailgrant("status")

    assert result.returncode == 2, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "mailgrant FAILING: 1 mailbox failing"
    assert any("mailbox" in line and "support: failing (connect.refused)" in line for line in lines)
    assert "error: [Errno 111] Connection refused" in result.stdout


def test_a_grant_to_reauthorize_exits_two_also_as_json(
    mailgrant: Any, make_client: Any, make_grant: Any
) -> None:
    world.beating_worker()
    grant = world.needing_reauthorization(make_grant(make_client(name="Microsoft 365")))

    result = mailgrant("status", "--json")

    assert result.returncode == 2, result.stderr
    body = json.loads(result.stdout)
    assert body["health"] == "needs_reauthorization"
    assert body["counts"]["grant"]["needs_reauthorization"] == 1
    assert [(p["kind"], p["id"], p["reason"]) for p in body["problems"]] == [
        ("grant", grant.pk, "test.refused")
    ]
    assert body["workers"][0]["name"] == "host:1:start"


def test_switched_off_objects_do_not_make_it_fail(mailgrant: Any) -> None:
    world.beating_worker()
    world.failing(world.mailbox(name="archive", enabled=False))

    assert mailgrant("status").returncode == 0


def test_an_unreadable_status_exits_three(mailgrant: Any, tmp_path: Any) -> None:
    env = dict(mailgrant.env)
    env["MAILGRANT_DATABASE_URL"] = "postgres://nobody@127.0.0.1:1/none"
    result = subprocess.run(
        [MAILGRANT, "status"], env=env, capture_output=True, text=True, timeout=120
    )

    assert result.returncode == 3, (result.stdout, result.stderr)
    assert result.stderr.startswith("mailgrant status unknown:")
    assert "Traceback" not in result.stderr


def test_no_secret_in_the_output(mailgrant: Any, make_client: Any, make_grant: Any) -> None:
    canaries = ("canary-cli-status-secret-61af", "canary-cli-status-refresh-0d3e")
    client = make_client(name="Microsoft 365", client_secret=canaries[0])
    world.needing_reauthorization(make_grant(client, refresh_token=canaries[1]))

    for args in (("status",), ("status", "--json")):
        result = mailgrant(*args)
        assert result.returncode == 2
        for canary in canaries:
            assert canary not in result.stdout + result.stderr


def test_a_reader_that_stops_early_gets_no_traceback(mailgrant: Any) -> None:
    # More than a pipe holds (64 KB), so the command is still writing when the reader leaves.
    for number in range(400):
        world.failing(world.mailbox(name=f"support-{number}"), message="x" * 200)
    reader = subprocess.Popen(["head", "-1"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    writer = subprocess.run(
        [MAILGRANT, "status"],
        env=mailgrant.env,
        stdout=reader.stdin,
        stderr=subprocess.PIPE,
        text=True,
        timeout=120,
    )
    assert reader.stdin is not None
    reader.stdin.close()
    assert reader.stdout is not None
    first = reader.stdout.read().decode()
    reader.wait(timeout=30)
    assert first.startswith("mailgrant ") and first.count("\n") == 1
    assert "Traceback" not in writer.stderr, writer.stderr
