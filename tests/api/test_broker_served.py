"""The broker served as in production (`mailgrant serve`: granian, 2 worker processes, 4
threads each) on SQLite and PostgreSQL: concurrent callers all get the grant's token, and every
answer has its audit row (no "database is locked" from the workers' concurrent writes)."""

import json
import os
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.servers.oidc import ACCOUNTS
from tests.servers.ports import free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
MAILGRANT = str(Path(sys.executable).with_name("mailgrant"))
CALLERS, CALLS = 16, 25


def _env(home: Path, database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAILGRANT_", "DJANGO_"))}
    env.update(
        MAILGRANT_HOME=str(home),
        MAILGRANT_DATABASE_URL=database_url,
        MAILGRANT_LOG_LEVEL="WARNING",
        PYTHONPATH=str(ROOT),
        DJANGO_SETTINGS_MODULE="mailgrant.config.settings",
    )
    return env


def _run(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def _scalar(database_url: str, query: str) -> object:
    if database_url.startswith("sqlite:///"):
        with sqlite3.connect(database_url.removeprefix("sqlite:///")) as db:
            return db.execute(query).fetchone()[0]
    import psycopg

    with psycopg.connect(database_url) as db:
        row = db.execute(query).fetchone()
        assert row is not None
        return row[0]


def test_served_broker_answers_every_caller_and_audits_every_call(
    oidc, tmp_path, database_url
) -> None:
    env = _env(tmp_path, database_url)
    _run(env, MAILGRANT, "migrate", "--noinput")
    alice = "alice@example.test"
    py = sys.executable
    grant = json.loads(
        _run(env, py, "-m", "tests.oauth.token_worker", "setup", oidc.issuer, alice,
             ACCOUNTS[alice]["password"])
    )  # fmt: skip
    token = json.loads(_run(env, py, "-m", "tests.oauth.token_worker", "reveal",
                            str(grant["grant"])))["access_token"]  # fmt: skip
    key = _run(env, MAILGRANT, "apikey", "create", "--name", "served", "--scope", "tokens")

    port = free_port()
    log = (tmp_path / "serve.log").open("wb")
    server = subprocess.Popen(
        [MAILGRANT, "serve", "--listen", f"127.0.0.1:{port}", "--no-poll"],
        env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}/api/v1"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "mailgrant serve did not answer"
                time.sleep(0.2)

        def call(_: int) -> list[tuple[int, str, str]]:
            answers = []
            with httpx.Client(headers={"Authorization": f"Bearer {key}"}) as http:
                for _ in range(CALLS):
                    response = http.post(
                        f"{base}/grants/{grant['grant']}/access-token",
                        json={"min_valid_seconds": 60},
                        timeout=30,
                    )
                    answers.append(
                        (
                            response.status_code,
                            response.headers.get("Cache-Control", ""),
                            response.json().get("access_token", response.text),
                        )
                    )
            return answers

        with ThreadPoolExecutor(CALLERS) as pool:
            answers = [a for batch in pool.map(call, range(CALLERS)) for a in batch]
        # The workers spool these audit rows and move them into the table several times a
        # second (mailgrant.common.audit_spool), while they keep serving.
        issued = "FROM common_auditevent WHERE action = 'grant.token_issued'"
        deadline = time.monotonic() + 30
        while _scalar(database_url, f"SELECT count(*) {issued}") < CALLERS * CALLS:
            assert time.monotonic() < deadline, "audit rows missing after 30 s"
            time.sleep(0.2)
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()

    assert answers == [(200, "no-store", token)] * (CALLERS * CALLS)
    assert "locked" not in (tmp_path / "serve.log").read_text()
    assert _scalar(database_url, f"SELECT count(*) {issued}") == CALLERS * CALLS
    assert _scalar(database_url, f"SELECT count(DISTINCT actor) {issued}") == 1
    last_used = "SELECT last_used_at IS NOT NULL FROM api_apikey WHERE name = 'served'"
    assert _scalar(database_url, last_used) in (1, True)
