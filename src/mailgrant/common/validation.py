"""A model's own field checks (full_clean) as the field errors services report, and what a
protected delete was refused by."""

from __future__ import annotations

from collections.abc import Iterable

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import models
from django.db.models import ProtectedError


def model_errors(instance: models.Model, *, exclude: Iterable[str] = ()) -> dict[str, str]:
    """Field -> what is wrong, by the model's own rules (types, lengths, choices, validators,
    uniqueness); empty when it is valid."""
    try:
        instance.full_clean(exclude=list(exclude))
    except ValidationError as exc:
        return {
            ("body" if field == NON_FIELD_ERRORS else field): " ".join(messages)
            for field, messages in exc.message_dict.items()
        }
    return {}


def users_of(exc: ProtectedError, *, what: str) -> str:
    """What protects an object from deletion, as a person reads it: "Mailboxes use this client
    (billing, support)"."""
    by_kind: dict[str, list[str]] = {}
    for obj in exc.protected_objects:
        by_kind.setdefault(str(obj._meta.verbose_name_plural), []).append(str(obj))
    return "; ".join(
        f"{kind.capitalize()} use this {what} ({', '.join(sorted(names)[:10])}"
        + (f" and {len(names) - 10} more)" if len(names) > 10 else ")")
        for kind, names in sorted(by_kind.items())
    )
