"""`mailgrant apikey create --expires-in DAYS | --expires DATE`, and the expiry in `list`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from mailgrant.api.models import ApiKey

pytestmark = pytest.mark.django_db(transaction=True)

MAILGRANT = str(Path(sys.executable).with_name("mailgrant"))


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAILGRANT_", "DJANGO_"))}
    env.update(
        MAILGRANT_HOME=str(settings.MAILGRANT_HOME),
        MAILGRANT_DATABASE_URL=f"sqlite:///{connection.settings_dict['NAME']}",
        MAILGRANT_TIME_ZONE="UTC",
    )
    return subprocess.run(
        [MAILGRANT, "apikey", *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_create_with_an_expiry_in_days_or_a_date_and_list_shows_it() -> None:
    before = timezone.now()
    made = _run("create", "--name", "month", "--scope", "read", "--expires-in", "30")
    assert made.returncode == 0, made.stderr
    month = ApiKey.objects.get(name="month").expires_at
    assert month is not None
    assert before + timedelta(days=30) <= month <= timezone.now() + timedelta(days=30)

    dated = _run("create", "--name", "dated", "--scope", "read", "--expires", "2999-01-31")
    assert dated.returncode == 0, dated.stderr
    assert ApiKey.objects.get(name="dated").expires_at == datetime(2999, 1, 31, tzinfo=UTC)
    assert _run("create", "--name", "plain", "--scope", "read").returncode == 0

    ApiKey.objects.create(
        name="old",
        prefix="mgk_old",
        key_hash="0" * 64,
        scopes=["read"],
        expires_at=timezone.now() - timedelta(days=1),
    )
    rows = {r["name"]: r for r in json.loads(_run("list", "--json").stdout)}
    assert rows["dated"]["expires_at"] == "2999-01-31T00:00:00+00:00"
    assert rows["plain"]["expires_at"] is None
    assert (rows["old"]["expired"], rows["month"]["expired"]) == (True, False)
    text = {line.split()[0]: line for line in _run("list").stdout.splitlines()}
    assert "expired" in text["old"] and "expires 2999-01-31" in text["dated"]
    assert "expire" not in text["plain"]


def test_a_bad_expiry_is_a_clear_error_and_makes_no_key() -> None:
    past = _run("create", "--name", "past", "--scope", "read", "--expires", "2001-01-01")
    assert past.returncode == 1 and "expires_at" in past.stderr and "future" in past.stderr
    for bad in (
        ("--expires", "next tuesday"),
        ("--expires-in", "0"),
        ("--expires-in", "-3"),
        ("--expires-in", "x"),
        ("--expires-in", "3", "--expires", "2999-01-01"),
    ):
        result = _run("create", "--name", "bad", "--scope", "read", *bad)
        assert result.returncode == 2, bad
        assert "Traceback" not in result.stderr
    assert not ApiKey.objects.exists()
