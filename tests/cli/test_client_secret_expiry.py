"""`mailgrant client add/update --secret-expires DATE`, shown by show and list, never with the
secret itself."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from mailgrant.oauth.models import OAuthClient

pytestmark = pytest.mark.django_db


def test_the_cli_sets_shows_and_lists_it(cli, tmp_path: Path) -> None:
    from django.core.management.base import CommandError

    secret = "canary-cli-expiry-secret-5e0b"
    path = tmp_path / "secret"
    path.write_text(secret)
    soon = (timezone.localdate() + timedelta(days=20)).isoformat()
    added = cli(
        "client", "add", "--name", "G", "--provider", "google", "--client-id", "1",
        "--client-secret-file", str(path), "--secret-expires", soon,
    )  # fmt: skip
    client = OAuthClient.objects.get()
    assert f"{timezone.localtime(client.secret_expires_at):%Y-%m-%d}" == soon
    shown = json.loads(cli("client", "show", "G", "--json").stdout)
    assert shown["secret_expires_at"] is not None
    assert shown["health"] == "warning" and shown["health_reason"] == "client.secret_expiring"
    text = cli("client", "show", "G").stdout
    listed = cli("client", "list").stdout
    assert "warning" in listed and f"secret expires {soon}" in listed
    for output in (added.stdout, text, listed, cli("client", "list", "--json").stdout):
        assert secret not in output
    cli("client", "update", "G", "--secret-expires", "")
    assert OAuthClient.objects.get().secret_expires_at is None
    assert OAuthClient.objects.get().health == "ok"
    with pytest.raises((CommandError, SystemExit)):
        cli("client", "update", "G", "--secret-expires", "soonish")
