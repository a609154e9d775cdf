"""GET /metrics: its scope, its content after real activity (a broker call, a fetch against
Dovecot), the gauges read from the database, and several processes summed by one scrape."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from mailgrant.api.services import apikey_create
from mailgrant.cli import COUNTED
from mailgrant.common.metrics_dir import VARIABLE, metrics_dir_prepare, metrics_dir_sweep
from mailgrant.mailboxes.services.fetch import mailbox_fetch
from mailgrant.mailboxes.services.mailboxes import mailbox_create
from tests.mailboxes.conftest import message
from tests.servers.dovecot import PASSWORD_USERS
from tests.worker import world

pytestmark = pytest.mark.django_db


@pytest.fixture
def scrape() -> Any:
    _, key = apikey_create(name="prometheus", scopes=["metrics"])

    def get() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        response = Client().get("/metrics", headers={"Authorization": f"Bearer {key}"})
        assert response.status_code == 200, response.content
        assert response["Content-Type"].startswith("text/plain; version=")
        samples = {}
        for family in text_string_to_metric_families(response.content.decode()):
            for sample in family.samples:
                samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return samples

    return get


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_without_a_key_401_and_without_the_scope_403() -> None:
    assert Client().get("/metrics").status_code == 401
    unknown = Client().get("/metrics", headers={"Authorization": "Bearer mg_nothing"})
    assert unknown.status_code == 401 and unknown["WWW-Authenticate"].startswith("Bearer")
    _, key = apikey_create(name="reader", scopes=["read", "write", "tokens", "status"])
    lacking = Client().get("/metrics", headers={"Authorization": f"Bearer {key}"})
    assert lacking.status_code == 403
    assert "'metrics'" in lacking.json()["message"]
    assert b"mailgrant_" not in lacking.content


def test_broker_calls_are_counted_with_their_latency(
    scrape: Any, make_client: Any, make_grant: Any
) -> None:
    grant = make_grant(make_client(name="Microsoft 365"), access_token="canary-metrics-at-51c2")
    _, key = apikey_create(name="helpdesk", scopes=["tokens"])
    before = scrape()

    issued = Client().post(
        f"/api/v1/grants/{grant.pk}/access-token", headers={"Authorization": f"Bearer {key}"}
    )
    refused = Client().post(
        "/api/v1/grants/987654/access-token", headers={"Authorization": f"Bearer {key}"}
    )
    after = scrape()

    assert issued.status_code == 200 and refused.status_code == 404
    for outcome in ("issued", "refused"):
        name = "mailgrant_broker_requests_total"
        assert value(after, name, outcome=outcome) == value(before, name, outcome=outcome) + 1
    count = "mailgrant_broker_seconds_count"
    assert value(after, count) == value(before, count) + 2
    assert value(after, "mailgrant_broker_seconds_sum") > value(
        before, "mailgrant_broker_seconds_sum"
    )


def test_a_fetch_against_dovecot_is_counted(scrape: Any, dovecot: Any) -> None:
    user, password = next(iter(PASSWORD_USERS.items()))
    box = mailbox_create(
        values={
            "name": "metered",
            "host": "127.0.0.1",
            "port": dovecot.imap_port,
            "security": "none",
            "username": user,
            "auth_method": "password",
        },
        password=password,
    )
    dovecot.deliver(user, message(1, extra="metrics"), message(2, extra="metrics"))
    before = scrape()

    result = mailbox_fetch(mailbox=box)
    after = scrape()

    # The shared Dovecot's INBOX may hold what earlier tests left there: count what came.
    assert result.fetched >= 2
    fetches = "mailgrant_fetches_total"
    assert value(after, fetches, protocol="imap", outcome="ok") == (
        value(before, fetches, protocol="imap", outcome="ok") + 1
    )
    stored = "mailgrant_messages_stored_total"
    assert value(after, stored) == value(before, stored) + result.fetched


def test_the_gauges_are_read_from_the_database(scrape: Any, make_client: Any) -> None:
    world.beating_worker(name="alive", age=5)
    world.beating_worker(name="dead", age=3600)
    client = make_client(name="Microsoft 365")
    world.failing(world.mailbox(name="support", client=client))
    world.mailbox(name="fine")
    from datetime import timedelta

    from django.utils import timezone

    world.mailbox(name="late", next_poll_at=timezone.now() - timedelta(seconds=120))

    samples = scrape()

    assert value(samples, "mailgrant_objects", kind="mailbox", health="failing") == 1
    assert value(samples, "mailgrant_objects", kind="mailbox", health="ok") == 2
    assert value(samples, "mailgrant_objects", kind="client", health="ok") == 1
    assert ("mailgrant_objects", (("health", "ok"), ("kind", "directory"))) in samples
    assert value(samples, "mailgrant_workers_alive") == 1
    assert 5 <= value(samples, "mailgrant_worker_beat_age_seconds", worker="alive") < 3600
    assert ("mailgrant_worker_beat_age_seconds", (("worker", "dead"),)) not in samples
    assert value(samples, "mailgrant_poll_lag_seconds") >= 120


COUNT = textwrap.dedent(
    """
    import sys
    from mailgrant.common.metrics_dir import metrics_dir_prepare
    metrics_dir_prepare()  # as the WSGI/ASGI entry points and `mailgrant serve|worker` do
    from mailgrant.common.metrics import BROKER_REQUESTS, MESSAGES_STORED
    MESSAGES_STORED.inc(int(sys.argv[1]))
    BROKER_REQUESTS.labels("issued").inc()
    print("counted", flush=True)
    sys.stdin.read()  # alive until the test has scraped
    """
)


def test_two_processes_count_and_one_scrape_sums_them(
    scrape: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "metrics"
    env = {**os.environ, "MAILGRANT_HOME": str(tmp_path)}
    env.pop(VARIABLE, None)
    counters = [
        subprocess.Popen(
            [sys.executable, "-c", COUNT, str(n)],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in (2, 3)
    ]
    try:
        for process in counters:
            assert process.stdout is not None and process.stdout.readline() == "counted\n"
        assert len(list(folder.glob("counter_*.db"))) == 2
        monkeypatch.setenv(VARIABLE, str(folder))  # this process serves the scrape

        samples = scrape()
    finally:
        for process in counters:
            process.communicate(timeout=60)

    assert value(samples, "mailgrant_messages_stored_total") == 5
    assert value(samples, "mailgrant_broker_requests_total", outcome="issued") == 2


def test_the_entry_points_count_into_a_private_folder_of_the_home(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAILGRANT_", "DJANGO_"))}
    env.pop(VARIABLE, None)
    env["MAILGRANT_HOME"] = str(tmp_path / "home")
    shown = subprocess.run(
        [
            sys.executable,
            "-c",
            "import os, mailgrant.config.wsgi, prometheus_client.values as v; "
            f"print('found', os.environ['{VARIABLE}'], v.ValueClass.__name__)",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    _, folder, value_class = shown.stdout.splitlines()[-1].split()
    assert folder == str(tmp_path / "home" / "metrics")
    assert value_class == "MmapedValue"  # multiprocess mode
    assert (Path(folder).stat().st_mode & 0o777) == 0o700
    assert {"serve", "worker"} <= COUNTED


def test_files_of_ended_processes_are_swept_and_live_ones_kept(tmp_path: Path) -> None:
    folder = metrics_dir_prepare({VARIABLE: str(tmp_path / "m")})
    ended = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    gone = folder / f"counter_{ended.stdout.strip()}.db"
    live = folder / f"counter_{os.getpid()}.db"
    gone.write_bytes(b"")
    live.write_bytes(b"")

    assert metrics_dir_sweep(folder) == [gone]
    assert live.exists() and not gone.exists()
