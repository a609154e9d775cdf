"""The browser-facing headers: one strict Content-Security-Policy on every page, the API's
Swagger UI from mailgrant's own static files (no CDN), HSTS for an https public URL, and
X-Forwarded-Proto believed only when the operator says a proxy sets it."""

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAILGRANT = str(Path(sys.executable).with_name("mailgrant"))
POLICY = {
    "default-src 'self'",
    "img-src 'self' data:",
    "object-src 'none'",
    "base-uri 'self'",
    "frame-ancestors 'none'",
    "form-action 'self'",
}


def _directives(header: str) -> set[str]:
    return {part.strip() for part in header.split(";") if part.strip()}


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path", ["/accounts/login/", "/admin/login/", "/api/v1/docs", "/api/v1/openapi.json"]
)
def test_every_page_has_the_strict_policy(client: Any, path: str) -> None:
    answer = client.get(path)
    assert answer.status_code == 200
    assert _directives(answer["Content-Security-Policy"]) == POLICY


@pytest.mark.django_db
def test_a_page_with_a_sign_in_button_may_post_on_to_its_provider(
    client: Any, make_client: Any
) -> None:
    make_client(type="user", authorize_url="https://id.example.test/oauth2/authorize")
    policy = _directives(client.get("/accounts/login/")["Content-Security-Policy"])
    assert "form-action 'self' https://id.example.test" in policy


@pytest.mark.django_db
def test_swagger_ui_comes_from_mailgrant_not_a_cdn(client: Any) -> None:
    page = client.get("/api/v1/docs").content.decode()
    assert "cdn" not in page.lower() and "https://" not in page
    for asset in ("ninja/swagger-ui-bundle.js", "ninja/swagger-ui-init.js", "ninja/swagger-ui.css"):
        assert f"/static/{asset}" in page
        served = client.get(f"/static/{asset}")
        assert served.status_code == 200, asset
        assert b"".join(served.streaming_content)


def _settings(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MAILGRANT_", "DJANGO_"))}
    clean.update(MAILGRANT_HOME=str(tmp_path), PYTHONPATH=str(ROOT), **env)
    return subprocess.run(
        [
            MAILGRANT,
            "shell",
            "-c",
            "from django.conf import settings as s; "
            "print(s.SECURE_HSTS_SECONDS, s.SECURE_PROXY_SSL_HEADER)",
        ],
        env=clean, cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_https_base_url_turns_hsts_on_and_trusts_no_proxy_header_by_itself(
    tmp_path: Path,
) -> None:
    https = _settings(tmp_path, MAILGRANT_BASE_URL="https://mail.example.test")
    assert https.returncode == 0, https.stderr
    assert https.stdout.splitlines()[-1] == "31536000 None"

    behind_proxy = _settings(
        tmp_path, MAILGRANT_BASE_URL="https://mail.example.test", MAILGRANT_TRUST_PROXY_PROTO="1"
    )
    assert behind_proxy.stdout.splitlines()[-1] == "31536000 ('HTTP_X_FORWARDED_PROTO', 'https')"

    plain = _settings(tmp_path, MAILGRANT_BASE_URL="http://127.0.0.1:8000")
    assert plain.stdout.splitlines()[-1] == "0 None"
