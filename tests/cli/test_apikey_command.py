"""`mailgrant apikey ...`: the key is printed once, alone; only its hash is stored."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from mailgrant.api.models import ApiKey
from mailgrant.api.services import key_hash

pytestmark = pytest.mark.django_db(transaction=True)

MAILGRANT = str(Path(sys.executable).with_name("mailgrant"))


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAILGRANT_", "DJANGO_"))}
    env.update(
        MAILGRANT_HOME=str(settings.MAILGRANT_HOME),
        MAILGRANT_DATABASE_URL=f"sqlite:///{connection.settings_dict['NAME']}",
    )
    return subprocess.run(
        [MAILGRANT, "apikey", *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_create_list_revoke() -> None:
    created = _run("create", "--name", "helpdesk", "--scope", "tokens", "--scope", "read")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert created.stdout == key + "\n" and key.startswith("mgk_")  # alone on stdout
    stored = ApiKey.objects.get(name="helpdesk")
    assert stored.key_hash == key_hash(key) and stored.scopes == ["read", "tokens"]
    raw = connection.cursor().execute("SELECT * FROM api_apikey").fetchall()
    assert key not in repr(raw)
    listing = _run("list", "--json")
    assert key not in listing.stdout
    assert json.loads(listing.stdout)[0]["scopes"] == ["read", "tokens"]
    assert _run("revoke", "helpdesk").returncode == 0
    assert ApiKey.objects.get(name="helpdesk").revoked_at is not None


def test_bad_usage() -> None:
    assert _run("create", "--name", "x", "--scope", "admin").returncode == 2
    assert _run("create", "--name", "x").returncode == 2
    assert _run("create", "--name", "dup", "--scope", "read").returncode == 0
    again = _run("create", "--name", "dup", "--scope", "read")
    assert again.returncode == 1 and "exists already" in again.stderr
    assert _run("revoke", "nope").returncode == 1
