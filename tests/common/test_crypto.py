import os
import stat

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from mailgrant.common.crypto import (
    Vault,
    VaultError,
    add_key_to_file,
    generate_key,
    get_vault,
    read_key_file,
    reset_vault,
)
from mailgrant.common.fields import Sealed
from mailgrant.oauth.models import OAuthClient


def test_round_trip_and_ciphertext_differs() -> None:
    vault = Vault([generate_key()])
    sealed = vault.encrypt("hunter2-secret")
    assert "hunter2" not in sealed
    assert vault.decrypt(sealed) == "hunter2-secret"
    assert vault.decrypt_json(vault.encrypt_json({"access_token": "x" * 10})) == {
        "access_token": "x" * 10
    }


def test_wrong_key_fails_closed_with_a_clear_error() -> None:
    sealed = Vault([generate_key()]).encrypt("value-1234")
    with pytest.raises(VaultError, match="wrong or missing") as caught:
        Vault([generate_key()]).decrypt(sealed)
    assert sealed not in str(caught.value)


@pytest.mark.parametrize("key", ["", "short", "!" * 44])
def test_malformed_keys_are_refused(key: str) -> None:
    with pytest.raises(VaultError):
        Vault([key] if key else [])


def test_older_keys_still_decrypt_and_rotate_moves_to_newest() -> None:
    old, new = generate_key(), generate_key()
    sealed = Vault([old]).encrypt("value-5678")
    vault = Vault([new, old])
    assert vault.decrypt(sealed) == "value-5678"
    assert not vault.is_current(sealed)
    rotated = vault.rotate(sealed)
    assert vault.is_current(rotated)
    assert Vault([new]).decrypt(rotated) == "value-5678"


def test_key_file_is_created_private_and_keys_prepend(tmp_path) -> None:
    path = tmp_path / "vault.key"
    with pytest.raises(VaultError):
        read_key_file(path, create=False)
    keys = read_key_file(path, create=True)
    assert len(keys) == 1
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    add_key_to_file(path)
    assert read_key_file(path, create=False)[1:] == keys
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def _raw(client: OAuthClient) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT client_secret FROM oauth_oauthclient WHERE id = %s", [client.pk])
        return cursor.fetchone()[0]


def test_sealed_field_stores_ciphertext_and_reveals_on_demand(make_client) -> None:
    client = make_client(client_secret="plain-secret-value")
    assert "plain-secret-value" not in _raw(client)
    loaded = OAuthClient.objects.get(pk=client.pk)
    assert isinstance(loaded.client_secret, Sealed)
    assert repr(loaded.client_secret) == "Sealed(***)"
    assert str(loaded.client_secret) == "Sealed(***)"
    assert loaded.client_secret.reveal() == "plain-secret-value"


def test_vault_rotate_command_reencrypts_everything(make_client, settings) -> None:
    client = make_client(client_secret="rotate-me-secret")
    before = _raw(client)
    call_command("vault", "rotate", "--new-key")
    after = _raw(client)
    assert after != before
    newest = read_key_file(settings.MAILGRANT_VAULT_KEY_FILE, create=False)[0]
    assert Vault([newest]).decrypt(after) == "rotate-me-secret"
    # A second rotation finds everything current.
    call_command("vault", "rotate")
    assert _raw(client) == after


def test_rotate_with_a_missing_key_changes_nothing(make_client, settings) -> None:
    client = make_client(client_secret="keep-me-secret")
    before = _raw(client)
    settings.MAILGRANT_VAULT_KEYS = [generate_key()]  # the original key is gone
    reset_vault()
    with pytest.raises(CommandError, match="no configured key opens it"):
        call_command("vault", "rotate")
    assert _raw(client) == before
    with pytest.raises(VaultError):
        OAuthClient.objects.get(pk=client.pk).client_secret.reveal()


def test_env_keys_take_precedence(settings) -> None:
    key = generate_key()
    settings.MAILGRANT_VAULT_KEYS = [key]
    reset_vault()
    assert Vault([key]).decrypt(get_vault().encrypt("from-env-key")) == "from-env-key"
