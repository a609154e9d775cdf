"""`mailgrant ldap ...` as a user runs it: a real process against the real slapd, with debug
logging on, and the bind password only ever on stdin or in a file."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection

from mailgrant.common.models import AuditEvent
from mailgrant.directory.models import LdapDirectory
from tests.servers import slapd as peer

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

MAILGRANT = str(Path(sys.executable).with_name("mailgrant"))


@pytest.fixture
def run(directory_people):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAILGRANT_", "DJANGO_"))}
    env.update(
        MAILGRANT_HOME=str(settings.MAILGRANT_HOME),
        MAILGRANT_DATABASE_URL=f"sqlite:///{connection.settings_dict['NAME']}",
        MAILGRANT_LOG_LEVEL="DEBUG",
    )
    outputs: list[str] = []

    def call(*args: str, input: str | None = None) -> subprocess.CompletedProcess:
        done = subprocess.run(
            [MAILGRANT, "ldap", *args],
            env=env,
            input=input,
            capture_output=True,
            text=True,
            timeout=120,
        )
        outputs.append(done.stdout + done.stderr)
        return done

    call.outputs = outputs  # type: ignore[attr-defined]
    call.directory_uri = directory_people.uri  # type: ignore[attr-defined]
    return call


def _add(run, name: str, *extra: str, password: str = peer.BIND_PASSWORD):
    """`mailgrant ldap add` for the test slapd, the bind password on stdin."""
    return run(
        "add",
        "--name",
        name,
        "--server-uri",
        run.directory_uri,
        "--security",
        "none",
        "--base-dn",
        peer.PEOPLE_DN,
        "--bind-dn",
        peer.BIND_DN,
        "--bind-password-stdin",
        "--disabled-filter",
        peer.DISABLED_FILTER,
        *extra,
        input=password + "\n",
    )


def test_add_test_sync_list_update(run, directory_people, tmp_path) -> None:
    added = _add(run, "staff", "--map", "first_name=cn", "--sync-interval", "30")
    assert added.returncode == 0, added.stderr
    assert added.stdout.strip() == "Added LDAP directory staff."
    directory = LdapDirectory.objects.get(name="staff")
    assert directory.bind_password.reveal() == peer.BIND_PASSWORD
    assert directory.attribute_map["first_name"] == "cn" and directory.sync_interval == 30

    tested = run("test", "staff")
    assert tested.returncode == 0, tested.stderr
    assert "3 people match the user filter, 1 of them disabled" in tested.stdout

    synced = run("sync", "staff")
    assert synced.returncode == 0, synced.stderr
    assert synced.stdout.strip() == "staff: 3 created, 0 updated, 0 disabled, 0 conflicts"
    assert get_user_model().objects.get(username="alice").first_name == "Alice Example"
    assert AuditEvent.objects.get(action="ldap_directory.synced").actor == "cli"

    listing = json.loads(run("list", "--json").stdout)
    assert listing[0]["name"] == "staff" and listing[0]["accounts"] == 3
    assert listing[0]["bind_password_set"] is True
    assert listing[0]["last_sync_summary"].startswith("3 created")
    plain = run("list")
    assert "staff" in plain.stdout and "3 accounts" in plain.stdout

    password_file = tmp_path / "bind-password"
    password_file.write_text("a-replaced-password\n")
    updated = run(
        "update",
        "staff",
        "--name",
        "people",
        "--bind-password-file",
        str(password_file),
        "--no-verify-ssl",
        "--show-in-login",
        "--map",
        "last_name=",
    )
    assert updated.returncode == 0, updated.stderr
    directory.refresh_from_db()
    assert directory.name == "people" and directory.show_in_login and not directory.verify_ssl
    assert directory.bind_password.reveal() == "a-replaced-password"
    assert "last_name" not in directory.attribute_map
    assert directory.base_dn == peer.PEOPLE_DN  # options not given stay

    everything = "".join(run.outputs)
    assert peer.BIND_PASSWORD not in everything and "a-replaced-password" not in everything


def test_sync_of_every_enabled_directory_and_failures(run, directory_people) -> None:
    assert _add(run, "good").returncode == 0
    assert _add(run, "bad password", password="canary-wrong-bind-password").returncode == 0
    assert _add(run, "off", "--status", "disabled").returncode == 0
    synced = run("sync")
    assert synced.returncode == 1
    assert "good: 3 created" in synced.stdout
    assert "bad password: sync failed:" in synced.stderr
    assert "refused the bind DN or password" in synced.stderr
    assert "1 of 2 directories failed" in synced.stderr  # the disabled one is not asked
    tested = run("test", "bad password")
    assert tested.returncode == 1 and "refused the bind DN or password" in tested.stderr
    listing = run("list", "--json")
    everything = "".join(run.outputs)
    assert "canary-wrong-bind-password" not in everything and peer.BIND_PASSWORD not in everything
    assert "refused the bind DN" in listing.stdout


def test_usage_errors_exit_2_and_refusals_exit_1(run, directory_people, tmp_path) -> None:
    """As every command: argparse's usage errors exit 2; an unknown directory or a refused
    value is one line and exit 1."""
    assert run().returncode == 2
    assert run("add", "--name", "x").returncode == 2  # --server-uri and --base-dn are required
    both = run(
        "add", "--name", "x", "--server-uri", "ldap://h", "--base-dn", "dc=x",
        "--bind-password-stdin", "--bind-password-file", "f",
    )  # fmt: skip
    assert both.returncode == 2
    # the password is never an argument
    assert run("add", "--name", "x", "--server-uri", "ldap://h", "--base-dn", "dc=x",
               "--bind-password", "pw").returncode == 2  # fmt: skip
    assert run("sync", "nope").returncode == 1
    missing = run("test", "nope")
    assert missing.returncode == 1 and "No LDAP directory named 'nope'" in missing.stderr
    bad_filter = _add(run, "x", "--user-filter", "(uid=a")
    assert bad_filter.returncode == 1 and "Invalid: user_filter:" in bad_filter.stderr
    bad_map = _add(run, "x", "--map", "username")
    assert bad_map.returncode == 1 and "FIELD=ATTRIBUTE" in bad_map.stderr
    no_file = _add(run, "x", "--ca-certificate-file", str(tmp_path / "none.pem"))
    assert no_file.returncode == 1 and "Cannot read the CA certificate file" in no_file.stderr
    assert not LdapDirectory.objects.exists()
    assert _add(run, "x").returncode == 0
    again = _add(run, "x")
    assert again.returncode == 1 and "A directory named 'x' exists" in again.stderr
