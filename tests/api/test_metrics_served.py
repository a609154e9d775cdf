"""/metrics as served in production (`mailgrant serve`: granian, 2 worker processes): broker
calls answered by either process are all in one scrape, summed from the processes' files."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.servers.ports import free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
MAILGRANT = str(Path(sys.executable).with_name("mailgrant"))
CALLERS, CALLS = 8, 10

SETUP = """
import time
from datetime import UTC, datetime
from mailgrant.api.services import apikey_create
from mailgrant.oauth.models import Grant, OAuthClient
from mailgrant.oauth.protocol import TokenSet
from mailgrant.oauth.services.clients import oauth_client_save
client = oauth_client_save(
    client=OAuthClient(name="served", provider="generic", client_id="served",
                       authorize_url="https://provider.invalid/authorize",
                       token_url="https://provider.invalid/token"),
    client_secret="served-secret")
now = time.time()
tokens = TokenSet(access_token="served-access-token", refresh_token="served-refresh",
                  expires_at=now + 86400, obtained_at=now, scope="mail")
grant = Grant.objects.create(client=client, is_default=True, account="a@example.test",
                             state=Grant.State.AUTHORIZED, token_set=tokens.to_dict(),
                             original_token_set=tokens.to_dict(),
                             expires_at=datetime.fromtimestamp(now + 86400, tz=UTC))
print(grant.pk, apikey_create(name="caller", scopes=["tokens"])[1],
      apikey_create(name="prometheus", scopes=["metrics"])[1])
"""


def _no_background_flag(env: dict[str, str]) -> str:
    """`serve`'s switch for running without background work (its name as this version has it)."""
    usage = subprocess.run(
        [MAILGRANT, "serve", "--help"], env=env, capture_output=True, text=True, timeout=120
    ).stdout
    return "--no-worker" if "--no-worker" in usage else "--no-poll"


def test_two_serving_processes_are_summed_in_one_scrape(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAILGRANT_", "DJANGO_"))}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update(MAILGRANT_HOME=str(tmp_path), MAILGRANT_LOG_LEVEL="WARNING", PYTHONPATH=str(ROOT))
    run = {"env": env, "cwd": ROOT, "capture_output": True, "text": True, "timeout": 120}
    subprocess.run([MAILGRANT, "migrate", "--noinput"], check=True, **run)  # type: ignore[call-overload]
    made = subprocess.run([MAILGRANT, "shell", "-c", SETUP], check=True, **run)  # type: ignore[call-overload]
    grant, caller, prometheus = made.stdout.split()[-3:]

    port = free_port()
    log = (tmp_path / "serve.log").open("wb")
    server = subprocess.Popen(
        [MAILGRANT, "serve", "--listen", f"127.0.0.1:{port}", "--workers", "2",
         _no_background_flag(env)],
        env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                if httpx.get(f"{base}/api/v1/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "mailgrant serve did not answer"
                time.sleep(0.2)

        def call(_: int) -> list[int]:
            with httpx.Client(headers={"Authorization": f"Bearer {caller}"}) as http:
                return [
                    http.post(f"{base}/api/v1/grants/{grant}/access-token", timeout=30).status_code
                    for _ in range(CALLS)
                ]

        with ThreadPoolExecutor(CALLERS) as pool:
            statuses = [s for batch in pool.map(call, range(CALLERS)) for s in batch]
        scraped = httpx.get(
            f"{base}/metrics", headers={"Authorization": f"Bearer {prometheus}"}, timeout=30
        )
        refused = httpx.get(f"{base}/metrics", headers={"Authorization": f"Bearer {caller}"})
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()

    assert statuses == [200] * (CALLERS * CALLS)
    assert refused.status_code == 403
    assert scraped.status_code == 200, scraped.text
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(scraped.text)
        for s in family.samples
    }
    assert samples[("mailgrant_broker_requests_total", (("outcome", "issued"),))] == CALLERS * CALLS
    assert samples[("mailgrant_broker_seconds_count", ())] == CALLERS * CALLS
    assert samples[("mailgrant_objects", (("health", "ok"), ("kind", "grant")))] == 1
    # Each granian worker counted in its own file of the home's metrics folder.
    assert len(list((tmp_path / "metrics").glob("counter_*.db"))) >= 2
