"""`mailgrant serve` with MAILGRANT_DEBUG=1 and MAILGRANT_LOG_LEVEL=DEBUG: it warns at start-up,
and no session key (a bearer credential) reaches its log, neither a made-up one nor the real one
of a signed-in superuser."""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.servers.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
MAILGRANT = str(Path(sys.executable).with_name("mailgrant"))
CANARY_SESSION = "canarysessionkey0123456789abcdef"
PASSWORD = "canary-admin-password-81f2e3"


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAILGRANT_", "DJANGO_"))}
    env.update(
        MAILGRANT_HOME=str(home),
        MAILGRANT_DEBUG="1",
        MAILGRANT_LOG_LEVEL="DEBUG",
        DJANGO_SUPERUSER_PASSWORD=PASSWORD,
        PYTHONPATH=str(ROOT),
    )
    return env


def test_debug_serving_warns_and_logs_no_session_key(tmp_path: Path) -> None:
    env = _env(tmp_path)
    for args in (
        ["migrate", "--noinput"],
        ["createsuperuser", "--noinput", "--username", "root", "--email", "root@x.test"],
    ):
        done = subprocess.run(
            [MAILGRANT, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
    port = free_port()
    env["MAILGRANT_BASE_URL"] = base = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [MAILGRANT, "serve", "--listen", f"127.0.0.1:{port}", "--no-poll", "--workers", "1"],
            env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while True:
                assert server.poll() is None, log_path.read_text()
                try:
                    httpx.get(f"{base}/api/v1/health", timeout=2)
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, "mailgrant serve did not answer"
                    time.sleep(0.2)
            with httpx.Client(base_url=base) as http:
                unknown = httpx.get(f"{base}/admin/", cookies={"sessionid": CANARY_SESSION})
                assert unknown.status_code == 302  # a session key the server does not know
                page = http.get("/admin/login/")
                csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
                assert csrf is not None
                signed_in = http.post(
                    "/admin/login/?next=/admin/",
                    data={
                        "csrfmiddlewaretoken": csrf[1],
                        "username": "root",
                        "password": PASSWORD,
                        "next": "/admin/",
                    },
                )
                assert signed_in.status_code == 302, signed_in.text
                session = signed_in.cookies["sessionid"]
                assert session != CANARY_SESSION
                assert http.get("/admin/").status_code == 200
        finally:
            server.terminate()
            server.wait(timeout=30)

    text = log_path.read_text()
    for secret in (CANARY_SESSION, session, PASSWORD, csrf[1]):
        assert secret not in text
    assert "MAILGRANT_DEBUG is on" in text
