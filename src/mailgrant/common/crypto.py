"""The vault: client secrets and token sets encrypted at rest with MultiFernet.

Keys come newest first, from ``MAILGRANT_VAULT_KEYS`` or from a key file created on first run
(mode 0600) in ``MAILGRANT_HOME``. Encryption always uses the newest key; decryption tries each.
A value that no key opens raises :class:`VaultError`: the ciphertext is never handed out as if
it were the value.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from mailgrant.common.files import write_private_file
from mailgrant.common.redaction import remember_secret


class VaultError(Exception):
    """The vault cannot do what was asked: a missing, malformed or wrong key."""


class Vault:
    def __init__(self, keys: Sequence[str | bytes]) -> None:
        if not keys:
            raise VaultError("The vault has no key: set MAILGRANT_VAULT_KEYS or keep the key file.")
        try:
            self._fernets = [Fernet(k) for k in keys]
        except (ValueError, TypeError) as exc:
            raise VaultError(
                "A vault key is malformed: each must be 32 url-safe base64-encoded bytes "
                "(make one with `mailgrant vault generate-key`)."
            ) from exc
        self._multi = MultiFernet(self._fernets)
        # ciphertext -> plaintext of the last values this vault opened: the token broker opens
        # the same token set on every call, and Fernet cost 15 to 30 us of each. A plaintext
        # kept here is no more exposed than the secrets the redaction net remembers anyway; a
        # changed secret has a new ciphertext, and new keys make a new vault.
        self._opened: dict[str, str] = {}
        self._opened_lock = threading.Lock()

    def encrypt(self, plaintext: str) -> str:
        remember_secret(plaintext)
        return self._multi.encrypt(plaintext.encode()).decode()

    def decrypt(self, ciphertext: str) -> str:
        plaintext = self._opened.get(ciphertext)
        if plaintext is None:
            try:
                plaintext = self._multi.decrypt(ciphertext.encode()).decode()
            except (InvalidToken, ValueError, TypeError) as exc:
                raise VaultError(
                    "A stored secret cannot be decrypted with the configured vault keys: the "
                    "key is wrong or missing (MAILGRANT_VAULT_KEYS or vault.key in "
                    "MAILGRANT_HOME)."
                ) from exc
            with self._opened_lock:
                if len(self._opened) >= _OPENED_MAX:
                    del self._opened[next(iter(self._opened))]  # the oldest
                self._opened[ciphertext] = plaintext
        remember_secret(plaintext)
        return plaintext

    def encrypt_json(self, value: Any) -> str:
        for secret in _string_leaves(value):
            remember_secret(secret)
        return self.encrypt(json.dumps(value, separators=(",", ":")))

    def decrypt_json(self, ciphertext: str) -> Any:
        value = json.loads(self.decrypt(ciphertext))
        for secret in _string_leaves(value):
            remember_secret(secret)
        return value

    def is_current(self, ciphertext: str) -> bool:
        """True when the newest key opens `ciphertext` (no rotation needed)."""
        try:
            self._fernets[0].decrypt(ciphertext.encode())
        except InvalidToken:
            return False
        return True

    def rotate(self, ciphertext: str) -> str:
        """Re-encrypt under the newest key."""
        try:
            return self._multi.rotate(ciphertext.encode()).decode()
        except InvalidToken as exc:
            raise VaultError(
                "A stored secret cannot be re-encrypted: no configured key opens it."
            ) from exc


_OPENED_MAX = 256
_SECRET_KEYS = {"access_token", "refresh_token", "id_token", "client_secret", "password"}


def _string_leaves(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [v for k, v in value.items() if k in _SECRET_KEYS and isinstance(v, str)]
    return []


def generate_key() -> str:
    return Fernet.generate_key().decode()


def read_key_file(path: Path, *, create: bool) -> list[str]:
    """Keys from `path`, newest first, one a line; a new file with one key when `create`."""
    if not path.exists():
        if not create:
            raise VaultError(f"The vault key file {path} does not exist.")
        write_private_file(path, generate_key() + "\n")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def add_key_to_file(path: Path) -> None:
    """Put a fresh key first in the key file; the older keys stay to decrypt old values."""
    keys = read_key_file(path, create=False)
    write_private_file(path, "\n".join([generate_key(), *keys]) + "\n")


_vault: Vault | None = None
_vault_lock = threading.Lock()


def get_vault() -> Vault:
    """The process's vault, built once from settings."""
    global _vault
    if _vault is None:
        with _vault_lock:
            if _vault is None:
                _vault = _vault_from_settings()
    return _vault


def reset_vault() -> None:
    """Forget the cached vault (after a key change, and in tests)."""
    global _vault
    with _vault_lock:
        _vault = None


def _vault_from_settings() -> Vault:
    from django.conf import settings

    if settings.MAILGRANT_VAULT_KEYS:
        return Vault(settings.MAILGRANT_VAULT_KEYS)
    return Vault(read_key_file(Path(settings.MAILGRANT_VAULT_KEY_FILE), create=True))
