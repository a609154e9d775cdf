"""Many callers at expiry cause exactly one refresh, across threads and processes, on SQLite and
PostgreSQL. The provider rotates refresh tokens and revokes the whole grant when an old one is
reused, so a second refresh would not go unnoticed."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.peers import IN_CI
from tests.servers.oidc import ACCOUNTS

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
MAILGRANT = str(Path(sys.executable).with_name("mailgrant"))
TTL = 20


@pytest.fixture
def short_tokens(oidc):
    oidc.set_access_token_ttl(TTL)
    yield
    oidc.set_access_token_ttl(3600)


def _env(home: Path, database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAILGRANT_", "DJANGO_"))}
    env.update(
        MAILGRANT_HOME=str(home),
        MAILGRANT_DATABASE_URL=database_url,
        PYTHONPATH=str(ROOT),
        DJANGO_SETTINGS_MODULE="mailgrant.config.settings",
    )
    return env


def _worker(env, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.oauth.token_worker", *args],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(process: subprocess.Popen):
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def test_twenty_callers_in_two_processes_cause_one_refresh(
    oidc, short_tokens, tmp_path, database_url
):
    env = _env(tmp_path, database_url)
    migrated = subprocess.run(
        [MAILGRANT, "migrate", "--noinput"], env=env, capture_output=True, text=True, timeout=120
    )
    assert migrated.returncode == 0, migrated.stderr
    alice = "alice@example.test"
    grant = _finish(_worker(env, "setup", oidc.issuer, alice, ACCOUNTS[alice]["password"]))
    first = _finish(_worker(env, "tokens", str(grant["grant"]), "1", "0"))[0]

    # Wait until the token has expired, then 2 processes x 10 threads ask at the same instant.
    time.sleep(max(0.0, grant["expires_at"] - time.time()) + 0.5)
    oidc.reset_stats()
    start = time.time() + 3  # both interpreters are up and waiting by then
    workers = [_worker(env, "tokens", str(grant["grant"]), "10", str(start)) for _ in range(2)]
    tokens = [token for w in workers for token in _finish(w)]

    assert not [t for t in tokens if t.startswith("ERROR")], tokens
    assert len(tokens) == 20
    assert len(set(tokens)) == 1 and tokens[0] != first
    stats = oidc.stats()
    assert stats["token"].get("refresh_token") == 1, stats
    assert stats["grants_revoked"] == 0 and not stats["token_errors"], stats
    info = oidc.introspect(
        tokens[0], client_id=grant["client_id"], client_secret=grant["client_secret"]
    )
    assert info["active"] is True and info["email"] == alice


def test_client_token_keeps_answering_across_expiries(oidc, short_tokens, tmp_path):
    env = _env(tmp_path, f"sqlite:///{tmp_path / 'cli.sqlite3'}")
    assert (
        subprocess.run(
            [MAILGRANT, "migrate", "--noinput"], env=env, capture_output=True, timeout=120
        ).returncode
        == 0
    )
    alice = "alice@example.test"
    grant = _finish(_worker(env, "setup", oidc.issuer, alice, ACCOUNTS[alice]["password"]))
    seen: list[str] = []
    # Until the token has changed twice (two expiries), each answer live; bounded, since a
    # loaded machine's command runs may stretch the calls past a fixed window.
    deadline = time.time() + 6 * TTL
    while len(set(seen)) < 3 and time.time() < deadline:
        result = subprocess.run(
            [MAILGRANT, "client", "token", grant["name"]],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        token = result.stdout.strip()
        info = oidc.introspect(
            token, client_id=grant["client_id"], client_secret=grant["client_secret"]
        )
        assert info["active"] is True, (len(seen), info)
        seen.append(token)
        time.sleep(4)
    assert len(set(seen)) >= 3  # the token changed at each expiry
    assert oidc.stats()["grants_revoked"] == 0


def test_postgres_is_required_in_ci() -> None:
    if IN_CI:
        assert os.environ.get("MAILGRANT_TEST_POSTGRES_URL"), ".ci/run must set it"
