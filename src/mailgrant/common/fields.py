"""Model fields whose values live encrypted in the vault.

Reading one gives a :class:`Sealed` value: it prints as ``Sealed(***)`` and opens only through
``reveal()``, so a secret cannot slip into a template, a log line or a ``repr`` by accident.
Assigning plain text (or a dict, for :class:`SealedJSONField`) encrypts it on save.
"""

from __future__ import annotations

from typing import Any

from django.db import models

from mailgrant.common.crypto import get_vault


class Sealed:
    __slots__ = ("ciphertext",)

    def __init__(self, ciphertext: str) -> None:
        self.ciphertext = ciphertext

    def reveal(self) -> str:
        return get_vault().decrypt(self.ciphertext)

    def reveal_json(self) -> Any:
        return get_vault().decrypt_json(self.ciphertext)

    def __repr__(self) -> str:
        return "Sealed(***)"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self.ciphertext)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sealed) and other.ciphertext == self.ciphertext

    def __hash__(self) -> int:
        return hash(self.ciphertext)


def reveal(value: Sealed | str | None) -> str:
    """The plaintext of a sealed field, whether read from the database (Sealed) or assigned in
    this process and not yet read back (a plain string)."""
    if isinstance(value, Sealed):
        return value.reveal()
    return value or ""


class SealedField(models.TextField):  # type: ignore[type-arg]
    """Text encrypted at rest; empty stays empty (no secret stored)."""

    # For django-stubs: what may be assigned, and what reading gives back.
    _pyi_private_set_type: str | dict[str, Any] | Sealed | None  # type: ignore[assignment]
    _pyi_private_get_type: Sealed | None  # type: ignore[assignment]

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> Sealed | None:
        return Sealed(value) if value else None

    def to_python(self, value: Any) -> Any:
        return value

    def get_prep_value(self, value: Any) -> str:
        if value is None or value == "":
            return ""
        if isinstance(value, Sealed):
            return value.ciphertext
        return self._encrypt(value)

    def _encrypt(self, value: Any) -> str:
        return get_vault().encrypt(str(value))

    def value_to_string(self, obj: Any) -> str:
        # dumpdata / serializers: ciphertext only, never the value.
        value = self.value_from_object(obj)
        return value.ciphertext if isinstance(value, Sealed) else ""


class SealedJSONField(SealedField):
    """A JSON value (a token set) encrypted at rest."""

    def _encrypt(self, value: Any) -> str:
        return get_vault().encrypt_json(value)


class URLField(models.URLField):
    """A URL field whose form field assumes https for a URL typed without a scheme."""

    def formfield(self, **kwargs: Any) -> Any:
        kwargs.setdefault("assume_scheme", "https")
        return super().formfield(**kwargs)
