"""On PostgreSQL a transaction may commit after one that took a later id: a poller of
GET /api/v1/events that had moved past the later id would never see the earlier one. The page
stops at the gap until it fills (or settles), so both events come, each once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import MAILGRANT
from tests.conftest import _postgres

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def postgres_url(tmp_path: Path) -> Iterator[str]:
    generator = _postgres(tmp_path)
    yield next(generator)
    next(generator, None)


def test_an_event_committed_after_a_later_id_is_not_skipped(
    postgres_url: str, tmp_path: Path
) -> None:
    env: dict[str, Any] = {
        k: v for k, v in os.environ.items() if not k.startswith(("MAILGRANT_", "DJANGO_"))
    }
    env.update(
        MAILGRANT_HOME=str(tmp_path),
        MAILGRANT_DATABASE_URL=postgres_url,
        PYTHONPATH=str(ROOT),
        DJANGO_SETTINGS_MODULE="mailgrant.config.settings",
    )
    migrated = subprocess.run(
        [MAILGRANT, "migrate", "--noinput"], env=env, capture_output=True, text=True, timeout=300
    )
    assert migrated.returncode == 0, migrated.stderr
    run = subprocess.run(
        [sys.executable, "-m", "tests.notify.outbox_order"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    # While the earlier id is uncommitted the later event waits, and the cursor stays.
    assert seen["before"] == [] and seen["before_next"] == seen["start"]
    assert seen["after"] == [seen["slow"], seen["fast"]]
