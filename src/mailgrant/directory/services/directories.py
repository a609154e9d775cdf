"""LDAP directories: checked (no server asked), saved, deleted, and their connection tested."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from mailgrant.common.audit import SYSTEM, Actor, AuditAction, audit_record
from mailgrant.common.crypto import VaultError
from mailgrant.common.errors import Conflict, Invalid
from mailgrant.common.health import Health
from mailgrant.common.validation import model_errors
from mailgrant.directory import ldap
from mailgrant.directory.health import directory_disabled_reason
from mailgrant.directory.models import LdapDirectory
from mailgrant.directory.selectors import (
    USER_FIELDS,
    ldap_directory_config,
)
from mailgrant.directory.services.accounts import directory_failure_text

ATTRIBUTE_NAME = re.compile(r"^(?:[A-Za-z][A-Za-z0-9-]*|\d+(?:\.\d+)+)$")


@dataclass(frozen=True)
class DirectoryTestResult:
    ok: bool
    message: str
    people: int = 0
    disabled: int = 0


def ldap_directory_check(*, directory: LdapDirectory) -> dict[str, str]:
    """Field errors of `directory` as it stands (no server is asked)."""
    errors: dict[str, str] = {}
    if error := ldap.server_uri_error(directory.server_uri, directory.security):
        errors["server_uri"] = error
    if error := ldap.dn_error(directory.base_dn):
        errors["base_dn"] = error
    if directory.bind_dn and (error := ldap.dn_error(directory.bind_dn)):
        errors["bind_dn"] = error
    if error := ldap.filter_error(directory.user_filter):
        errors["user_filter"] = error
    if directory.disabled_filter.strip() and (
        error := ldap.filter_error(directory.disabled_filter)
    ):
        errors["disabled_filter"] = error
    if error := ldap.ca_certificate_error(directory.ca_certificate):
        errors["ca_certificate"] = error
    if error := _attribute_map_error(directory.attribute_map):
        errors["attribute_map"] = error
    return errors


def _attribute_map_error(mapping: Any) -> str:
    if not isinstance(mapping, dict):
        return 'A JSON object: user field -> LDAP attribute, e.g. {"username": "uid"}.'
    unknown = sorted(set(mapping) - set(USER_FIELDS))
    if unknown:
        return f"Unknown user field(s) {', '.join(unknown)}; use {', '.join(USER_FIELDS)}."
    if not mapping.get("username"):
        return "Map username to an attribute (e.g. uid, or sAMAccountName on Active Directory)."
    for user_field, attribute in mapping.items():
        if not isinstance(attribute, str) or not ATTRIBUTE_NAME.match(attribute):
            return f"{user_field}: {attribute!r} is not an LDAP attribute name."
    return ""


MOVED_PASSWORD = (
    "The server, security, certificate or TLS verification changed: enter the bind password "
    "again with this change (the stored one is never sent to another server)."
)


def ldap_directory_password_errors(
    *, directory: LdapDirectory, bind_password: str | None
) -> dict[str, str]:
    """The bind password's rules: a bind DN needs one, and a stored one does not follow a
    change of server (URI, security, CA, verification switched off) unless given again."""
    if not directory.bind_dn or bind_password:
        return {}
    if not directory.bind_password:
        return {"bind_password": "A bind DN needs its password."}
    stored = LdapDirectory.objects.filter(pk=directory.pk).first() if directory.pk else None
    if stored is not None and _server_moved(stored=stored, directory=directory):
        return {"bind_password": MOVED_PASSWORD}
    return {}


def _server_moved(*, stored: LdapDirectory, directory: LdapDirectory) -> bool:
    if stored.verify_ssl and not directory.verify_ssl:
        return True

    def server(d: LdapDirectory) -> tuple[str, str, str]:
        return ((d.server_uri or "").strip().lower(), d.security, (d.ca_certificate or "").strip())

    return server(stored) != server(directory)


def ldap_directory_save(
    *, directory: LdapDirectory, bind_password: str | None = None, actor: Actor = SYSTEM
) -> LdapDirectory:
    """Create or update `directory`; a non-empty `bind_password` replaces the stored one. A
    change of server without the bind password again is refused, changing nothing."""
    taken = LdapDirectory.objects.filter(name=directory.name).exclude(pk=directory.pk)
    if directory.name and taken.exists():
        raise Conflict(f"A directory named {directory.name!r} exists.")
    errors = model_errors(directory, exclude=["bind_password"])
    errors.update(ldap_directory_check(directory=directory))
    errors.update(ldap_directory_password_errors(directory=directory, bind_password=bind_password))
    if errors:
        raise Invalid(errors)
    directory.user_filter = ldap.normalize_filter(directory.user_filter)
    directory.disabled_filter = ldap.normalize_filter(directory.disabled_filter)
    replaced = bool(bind_password) and directory.pk is not None
    if bind_password:
        directory.bind_password = bind_password  # type: ignore[assignment]  # sealed on save
    elif not directory.bind_dn:
        directory.bind_password = None  # anonymous: nothing to keep
    creating = directory.pk is None
    _health_on_save(directory=directory, password_given=bool(bind_password))
    with transaction.atomic():
        directory.save()
        audit_record(
            actor=actor,
            target=directory,
            action=AuditAction.LDAP_DIRECTORY_CREATED
            if creating
            else AuditAction.LDAP_DIRECTORY_UPDATED,
            message="bind password replaced" if replaced else "",
        )
    return directory


# What a sync depends on: a change of one is a fresh start for the directory's health.
SYNC_FIELDS = (
    "server_uri",
    "security",
    "verify_ssl",
    "ca_certificate",
    "bind_dn",
    "base_dn",
    "user_filter",
    "disabled_filter",
    "sync_interval",
)


def _health_on_save(*, directory: LdapDirectory, password_given: bool) -> None:
    """Disabled is a health of its own; enabled again, or its connection settings changed, a
    directory starts afresh (ok, synced at once) rather than waiting out its old backoff."""
    now = timezone.now()
    if not directory.is_enabled:
        reason = directory_disabled_reason()
        directory.health_set(health=Health.DISABLED, reason=reason.code, hint=reason.hint, now=now)
        return
    if directory.health_restart_on_change(fields=SYNC_FIELDS, forced=password_given, now=now):
        directory.next_sync_at = None


def ldap_directory_delete(*, directory: LdapDirectory, actor: Actor = SYSTEM) -> None:
    """The directory and its account links go; the users it imported stay (inactive ones too)."""
    with transaction.atomic():
        audit_record(actor=actor, target=directory, action=AuditAction.LDAP_DIRECTORY_DELETED)
        directory.delete()


def ldap_directory_test(*, directory: LdapDirectory) -> DirectoryTestResult:
    """Bind as configured and count the people a sync would import. Changes nothing."""
    try:
        people, disabled = ldap.count_people(ldap_directory_config(directory=directory))
    except (ldap.LdapError, VaultError) as exc:
        return DirectoryTestResult(ok=False, message=directory_failure_text(exc))
    who = directory.bind_dn or "anonymous"
    return DirectoryTestResult(
        ok=True,
        message=f"Connected to {directory.server_uri} ({directory.get_security_display()}) as "
        f"{who}: {people} people match the user filter, {disabled} of them disabled.",
        people=people,
        disabled=disabled,
    )
