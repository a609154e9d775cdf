"""The live look-ups of sign-in: single sign-on's linked directory user, and the login page's
directory password."""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.utils import timezone

from mailgrant.common.audit import SSO, Actor, AuditAction, audit_record
from mailgrant.common.crypto import VaultError
from mailgrant.directory import ldap
from mailgrant.directory.errors import DirectoryUserDisabled
from mailgrant.directory.models import DirectoryAccount, LdapDirectory
from mailgrant.directory.selectors import (
    directory_account_find,
    ldap_directories_for_login,
    ldap_directory_attribute_map,
    ldap_directory_config,
)
from mailgrant.directory.services.accounts import (
    directory_account_disable,
    directory_account_upsert,
    directory_failure_text,
    entry_user_values,
    username_usable,
)

log = logging.getLogger(__name__)


def _refresh_account(
    *, directory: LdapDirectory, entry: ldap.DirectoryEntry, mapping: dict[str, str], actor: Actor
) -> tuple[str, DirectoryAccount | None]:
    """Create or update the one account of `entry`, as a sync would; audited when it changed."""
    values = entry_user_values(entry, mapping)
    if not username_usable(values.get("username", "")):
        return "skipped", None
    now = timezone.now()
    with transaction.atomic():
        account = directory_account_find(directory=directory, username=values["username"])
        outcome, account = directory_account_upsert(
            directory=directory,
            account=account,
            values=values,
            dn=entry.dn,
            disabled=entry.disabled,
            now=now,
        )
        if account is not None:
            DirectoryAccount.objects.filter(pk=account.pk).update(synced_at=now)
        if outcome in {"created", "updated", "disabled"} and account is not None:
            audit_record(
                actor=Actor(name=actor.name, user=account.user),
                target=account,
                action=AuditAction(f"directory_account.{outcome}"),
                message="read from the directory at sign-in",
            )
    if outcome == "conflict":
        log.warning(
            "LDAP directory %s: %s is taken by a user this directory did not create; not linked",
            directory.name,
            values["username"],
        )
    return outcome, account


def directory_account_for_login(
    *, directories: list[LdapDirectory], username: str
) -> DirectoryAccount | None:
    """The directory account of a person signing in through single sign-on, looked up live in
    each enabled directory (in order) by the attribute mapped to username, and refreshed.

    Raises DirectoryUserDisabled when the directory says the person is disabled. When a
    directory cannot be asked, its last synced account stands in (a disabled one is refused
    too). None when no directory knows the username."""
    if not username:
        return None
    for directory in directories:
        if not directory.is_enabled:
            continue
        mapping = ldap_directory_attribute_map(directory=directory)
        if not mapping.get("username"):
            continue
        try:
            entry = ldap.find_person(
                ldap_directory_config(directory=directory),
                attribute=mapping["username"],
                value=username,
                attributes=sorted(set(mapping.values())),
            )
        except ldap.LdapError as exc:
            if exc.kind == "ambiguous":
                log.warning("LDAP directory %s: %s", directory.name, exc.message)
                continue
            fallback = _last_synced(directory=directory, username=username, reason=exc.message)
            if fallback is not None:
                return fallback
            continue
        except VaultError as exc:
            fallback = _last_synced(directory=directory, username=username, reason=str(exc))
            if fallback is not None:
                return fallback
            continue
        if entry is None:
            # Someone the directory once listed and no longer does is a person who left, not
            # a stranger: refused like a disabled one, not offered to the create expression.
            if directory_account_find(directory=directory, username=username) is not None:
                _disable_vanished(directory=directory, username=username)
                raise DirectoryUserDisabled(directory=directory.name, username=username)
            continue
        _, account = _refresh_account(directory=directory, entry=entry, mapping=mapping, actor=SSO)
        if entry.disabled:
            raise DirectoryUserDisabled(directory=directory.name, username=username)
        if account is not None:
            return account
    return None


def _last_synced(
    *, directory: LdapDirectory, username: str, reason: str
) -> DirectoryAccount | None:
    account = directory_account_find(directory=directory, username=username)
    log.warning(
        "LDAP directory %s cannot be asked at sign-in (%s); %s",
        directory.name,
        reason,
        "using the last synced account" if account else "no synced account either",
    )
    if account is not None and account.is_disabled:
        raise DirectoryUserDisabled(directory=directory.name, username=username)
    return account


def _disable_vanished(*, directory: LdapDirectory, username: str) -> None:
    """The directory no longer lists a person it once did: disabled now, as the next sync
    would."""
    account = directory_account_find(directory=directory, username=username)
    if account is None or account.is_disabled:
        return
    with transaction.atomic():
        directory_account_disable(account, timezone.now())
        audit_record(
            actor=Actor(name=SSO.name, user=account.user),
            target=account,
            action=AuditAction.DIRECTORY_ACCOUNT_DISABLED,
            message="no longer in the directory at sign-in",
        )


def directory_password_login(*, username: str, password: str) -> Any:
    """The user of a person who signs in on the login page with their directory password, in
    the enabled "show in login" directories (the first whose person has this password wins).

    None when no such directory knows this username and password; DirectoryUserDisabled when
    the password is right but the directory says the person is disabled. The password is only
    sent to the directory in a bind, never stored or logged."""
    if not username or not password:
        return None
    for directory in ldap_directories_for_login():
        mapping = ldap_directory_attribute_map(directory=directory)
        if not mapping.get("username"):
            continue
        try:
            config = ldap_directory_config(directory=directory)
            entry = ldap.find_person(
                config,
                attribute=mapping["username"],
                value=username,
                attributes=sorted(set(mapping.values())),
            )
            if entry is None or not ldap.check_password(config, dn=entry.dn, password=password):
                continue
        except (ldap.LdapError, VaultError) as exc:
            log.warning(
                "LDAP directory %s: a password sign-in could not be checked: %s",
                directory.name,
                directory_failure_text(exc),
            )
            continue
        _, account = _refresh_account(
            directory=directory, entry=entry, mapping=mapping, actor=Actor("login")
        )
        if entry.disabled:
            raise DirectoryUserDisabled(directory=directory.name, username=username)
        if account is not None:
            return account.user
    return None
