"""Writes that span apps: re-encrypting every sealed value under the newest vault key."""

from dataclasses import dataclass

from django.apps import apps
from django.db import transaction

from mailgrant.common.audit import SYSTEM, Actor, AuditAction, audit_record
from mailgrant.common.crypto import get_vault
from mailgrant.common.fields import Sealed, SealedField


@dataclass(frozen=True)
class RotationResult:
    rotated: int
    already_current: int


def vault_rotate(*, actor: Actor = SYSTEM) -> RotationResult:
    """Re-encrypt every sealed field of every model under the newest key, in one transaction:
    a value no key opens stops the rotation with VaultError and nothing is half-done."""
    vault = get_vault()
    rotated = current = 0
    with transaction.atomic():
        for model in apps.get_models():
            sealed = [f for f in model._meta.concrete_fields if isinstance(f, SealedField)]
            if not sealed:
                continue
            for row in model._default_manager.select_for_update().only(
                "pk", *(f.attname for f in sealed)
            ):
                changed = []
                for field in sealed:
                    value = getattr(row, field.attname)
                    if not isinstance(value, Sealed):
                        continue
                    if vault.is_current(value.ciphertext):
                        current += 1
                        continue
                    setattr(row, field.attname, Sealed(vault.rotate(value.ciphertext)))
                    changed.append(field.attname)
                if changed:
                    row.save(update_fields=changed)
                    rotated += len(changed)
        audit_record(
            actor=actor,
            action=AuditAction.VAULT_ROTATED,
            message=f"{rotated} value(s) re-encrypted, {current} already current",
        )
    return RotationResult(rotated=rotated, already_current=current)
