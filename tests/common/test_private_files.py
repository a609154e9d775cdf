"""What mailgrant writes beside its secrets stays private: the key files' temporary file, the
audit spool folder, the store's folders, and the system check for what is still open."""

import os
import stat
from pathlib import Path

import pytest
from django.core.management import call_command

from mailgrant.common.audit_spool import AuditSpool
from mailgrant.common.files import write_private_file
from mailgrant.common.home import home_check, private_dirs


def _mode(path: Path) -> str:
    return oct(stat.S_IMODE(path.lstat().st_mode))


def test_a_symlink_planted_as_the_temporary_file_is_not_written_through(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("untouched")
    (tmp_path / ".secret_key.tmp").symlink_to(victim)
    write_private_file(tmp_path / "secret_key", "s3cret-canary")
    assert victim.read_text() == "untouched"
    assert (tmp_path / "secret_key").read_text() == "s3cret-canary"
    assert _mode(tmp_path / "secret_key") == "0o600"


def test_an_open_file_left_as_the_temporary_file_does_not_make_the_key_readable(
    tmp_path: Path,
) -> None:
    left = tmp_path / ".vault.key.tmp"
    left.write_text("")
    left.chmod(0o644)
    write_private_file(tmp_path / "vault.key", "key-canary")
    assert _mode(tmp_path / "vault.key") == "0o600"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == [left.name]


@pytest.mark.django_db
def test_an_existing_open_spool_folder_is_tightened(tmp_path: Path) -> None:
    folder = tmp_path / "audit-spool"
    folder.mkdir()
    folder.chmod(0o755)
    spool = AuditSpool(folder)
    try:
        assert _mode(folder) == "0o700"
    finally:
        spool.drain(final=True)


def test_private_dirs_makes_every_missing_level_0700(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        private_dirs(tmp_path / "a" / "b" / "c")
    finally:
        os.umask(old)
    assert [_mode(tmp_path / p) for p in ("a", "a/b", "a/b/c")] == ["0o700"] * 3


def test_the_system_check_warns_about_an_open_store(tmp_path: Path, settings, capsys) -> None:
    store = tmp_path / "store"
    store.mkdir()
    store.chmod(0o755)
    settings.MAILGRANT_MESSAGE_STORE = store
    warnings = home_check()
    assert [w.id for w in warnings] == ["mailgrant.W002"]
    assert str(store) in warnings[0].msg and "0755" in warnings[0].msg
    call_command("check")
    assert "mailgrant.W002" in capsys.readouterr().err
    store.chmod(0o700)
    assert home_check() == []
