"""Writes for LDAP directories: save, sync (people imported as read-only users), test the
connection, and the live look-ups that single sign-on and the login page make.

A directory owns the users it created (linked by a DirectoryAccount) and never takes over a user
it did not create: a person whose username is already taken is reported as a conflict. People
who leave the directory, or whom its disabled filter matches, are disabled (their user made
inactive), never deleted."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from mailgrant.common.audit import actor_for, audit_record
from mailgrant.common.crypto import VaultError
from mailgrant.sso import ldap
from mailgrant.sso.directory_selectors import (
    USER_FIELDS,
    directory_account_find,
    ldap_directories_due,
    ldap_directories_for_login,
    ldap_directory_attribute_map,
    ldap_directory_config,
)
from mailgrant.sso.models import DirectoryAccount, LdapDirectory

log = logging.getLogger(__name__)

ATTRIBUTE_NAME = re.compile(r"^(?:[A-Za-z][A-Za-z0-9-]*|\d+(?:\.\d+)+)$")
MAX_CONFLICTS_NAMED = 20


class DirectoryError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class DirectoryInvalid(DirectoryError):
    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


class DirectoryUserDisabled(Exception):
    """The directory says this person is disabled: the login is refused. str() is the sentence
    shown to the person; `directory` and `username` are for logs."""

    def __init__(self, *, directory: str, username: str) -> None:
        super().__init__(
            "Your account is disabled in the company directory, so you cannot sign in. "
            "Ask your administrator."
        )
        self.directory = directory
        self.username = username


@dataclass
class SyncResult:
    directory: str
    ok: bool = True
    error: str = ""
    created: int = 0
    updated: int = 0
    disabled: int = 0
    unchanged: int = 0
    skipped: int = 0
    conflicts: list[str] = field(default_factory=list)

    @property
    def summary(self) -> str:
        if not self.ok:
            return "failed"
        text = (
            f"{self.created} created, {self.updated} updated, {self.disabled} disabled, "
            f"{len(self.conflicts)} conflicts"
        )
        return text + (f", {self.skipped} skipped" if self.skipped else "")

    @property
    def details(self) -> str:
        """The summary and the usernames in conflict (the first few)."""
        if not self.ok:
            return self.error
        if not self.conflicts:
            return self.summary
        named = ", ".join(self.conflicts[:MAX_CONFLICTS_NAMED])
        more = len(self.conflicts) - MAX_CONFLICTS_NAMED
        return f"{self.summary}; conflicts: {named}" + (f" and {more} more" if more > 0 else "")


@dataclass(frozen=True)
class DirectoryTestResult:
    ok: bool
    message: str
    people: int = 0
    disabled: int = 0


# --- saving ------------------------------------------------------------------------------------


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


def ldap_directory_save(
    *, directory: LdapDirectory, bind_password: str | None = None, user: Any = None
) -> LdapDirectory:
    """Create or update `directory`; a non-empty `bind_password` replaces the stored one."""
    errors = ldap_directory_check(directory=directory)
    if directory.bind_dn and not (bind_password or directory.bind_password):
        errors["bind_password"] = "A bind DN needs its password."
    if errors:
        raise DirectoryInvalid(errors)
    directory.user_filter = ldap.normalize_filter(directory.user_filter)
    directory.disabled_filter = ldap.normalize_filter(directory.disabled_filter)
    replaced = bool(bind_password) and directory.pk is not None
    if bind_password:
        directory.bind_password = bind_password  # type: ignore[assignment]  # sealed on save
    elif not directory.bind_dn:
        directory.bind_password = None  # anonymous: nothing to keep
    creating = directory.pk is None
    with transaction.atomic():
        directory.save()
        audit_record(
            actor=actor_for(user),
            user=user,
            target=directory,
            action="ldap_directory.created" if creating else "ldap_directory.updated",
            message="bind password replaced" if replaced else "",
        )
    return directory


def ldap_directory_delete(*, directory: LdapDirectory, user: Any = None) -> None:
    """The directory and its account links go; the users it imported stay (inactive ones too)."""
    with transaction.atomic():
        audit_record(
            actor=actor_for(user), user=user, target=directory, action="ldap_directory.deleted"
        )
        directory.delete()


# --- accounts ----------------------------------------------------------------------------------


def _user_values(entry: ldap.DirectoryEntry, mapping: dict[str, str]) -> dict[str, str]:
    """User field -> value from the entry (a multi-valued attribute gives its first value),
    cut to the field's length; the username is left whole so that a too-long one is seen."""
    values = {}
    for user_field, attribute in mapping.items():
        value = entry.first(attribute).strip()
        if user_field != "username":
            value = value[: _max_length(user_field)]
        values[user_field] = value
    return values


def _max_length(user_field: str) -> int:
    return int(getattr(get_user_model()._meta.get_field(user_field), "max_length", None) or 150)


def _usable_username(username: str) -> bool:
    return bool(username) and len(username) <= _max_length("username")


def _upsert_account(
    *,
    directory: LdapDirectory,
    account: DirectoryAccount | None,
    values: dict[str, str],
    dn: str,
    disabled: bool,
    now: datetime,
) -> tuple[str, DirectoryAccount | None]:
    """Create or update the user and account of one directory entry. Returns the outcome:
    created, updated, disabled (newly), unchanged or conflict (a username taken by a user that
    this directory did not create)."""
    user_model = get_user_model()
    username = values["username"]
    mapped = {f: values[f] for f in USER_FIELDS if f in values and f != "username"}
    if account is None:
        if user_model._default_manager.filter(username__iexact=username).exists():
            return "conflict", None
        user = user_model(username=username, is_active=not disabled, **mapped)
        user.set_unusable_password()
        user.save()
        account = DirectoryAccount.objects.create(
            directory=directory,
            user=user,
            username=username,
            dn=dn,
            is_disabled=disabled,
            synced_at=now,
        )
        return "created", account

    user = account.user
    changed_user = [f for f, v in mapped.items() if getattr(user, f) != v]
    for f in changed_user:
        setattr(user, f, mapped[f])
    if user.is_active == disabled:
        user.is_active = not disabled
        changed_user.append("is_active")
    if (
        user.get_username() != username
        and not user_model._default_manager.filter(username__iexact=username)
        .exclude(pk=user.pk)
        .exists()
    ):
        setattr(user, user_model.USERNAME_FIELD, username)
        changed_user.append(user_model.USERNAME_FIELD)
    if changed_user:
        user.save(update_fields=changed_user)

    newly_disabled = disabled and not account.is_disabled
    changed_account = [
        name
        for name, value in (("username", username), ("dn", dn), ("is_disabled", disabled))
        if getattr(account, name) != value
    ]
    for name in changed_account:
        setattr(account, name, {"username": username, "dn": dn, "is_disabled": disabled}[name])
    if changed_account:
        account.synced_at = now
        account.save(update_fields=[*changed_account, "synced_at"])
    if newly_disabled:
        return "disabled", account
    return ("updated" if changed_user or changed_account else "unchanged"), account


def _disable_account(account: DirectoryAccount, now: datetime) -> None:
    account.is_disabled = True
    account.synced_at = now
    account.save(update_fields=["is_disabled", "synced_at"])
    if account.user.is_active:
        account.user.is_active = False
        account.user.save(update_fields=["is_active"])


# --- sync --------------------------------------------------------------------------------------


def _failure_message(exc: Exception) -> str:
    if isinstance(exc, ldap.LdapError):
        return exc.message
    return f"The bind password cannot be opened: {exc}"


def ldap_directory_sync(
    *, directory: LdapDirectory, actor: str = "system", user: Any = None
) -> SyncResult:
    """Import the directory's people: create and update their users, disable the ones it no
    longer lists or marks disabled. A failure (server down, bind refused, bad base DN or filter)
    changes no user: it is the result's error, the directory's last_error and an audit row."""
    result = SyncResult(directory=directory.name)
    if not directory.is_enabled:
        result.ok, result.error = False, f"The directory {directory.name} is disabled."
        return result
    mapping = ldap_directory_attribute_map(directory=directory)
    try:
        if not mapping.get("username"):
            raise ldap.LdapError("The attribute map names no username attribute.", kind="config")
        entries = ldap.search_people(
            ldap_directory_config(directory=directory), attributes=sorted(set(mapping.values()))
        )
    except (ldap.LdapError, VaultError) as exc:
        result.ok, result.error = False, _failure_message(exc)
        _record_failure(directory=directory, result=result, actor=actor, user=user)
        return result

    now = timezone.now()
    with transaction.atomic():
        # One sync of a directory at a time (a row lock where the database has them; SQLite's
        # write lock serializes whole transactions anyway).
        LdapDirectory.objects.select_for_update().filter(pk=directory.pk).exists()
        _apply_entries(directory=directory, entries=entries, mapping=mapping, now=now, into=result)
        directory.last_sync_at = now
        directory.last_sync_summary = result.summary
        directory.last_error = ""
        LdapDirectory.objects.filter(pk=directory.pk).update(
            last_sync_at=now, last_sync_summary=result.summary, last_error=""
        )
        audit_record(
            actor=actor if user is None else actor_for(user),
            user=user,
            target=directory,
            action="ldap_directory.synced",
            outcome="ok",
            message=result.details,
        )
    log.info("LDAP directory %s synced: %s", directory.name, result.details)
    return result


def _apply_entries(
    *,
    directory: LdapDirectory,
    entries: list[ldap.DirectoryEntry],
    mapping: dict[str, str],
    now: datetime,
    into: SyncResult,
) -> None:
    accounts = {
        a.username.lower(): a
        for a in DirectoryAccount.objects.filter(directory=directory).select_related("user")
    }
    seen: set[str] = set()
    seen_ids: list[int] = []
    for entry in entries:
        values = _user_values(entry, mapping)
        username = values.get("username", "")
        if not _usable_username(username):
            into.skipped += 1
            continue
        key = username.lower()
        if key in seen:
            into.conflicts.append(f"{username} (listed twice)")
            continue
        seen.add(key)
        outcome, account = _upsert_account(
            directory=directory,
            account=accounts.get(key),
            values=values,
            dn=entry.dn,
            disabled=entry.disabled,
            now=now,
        )
        if account is None:
            into.conflicts.append(username)
            continue
        setattr(into, outcome, getattr(into, outcome) + 1)
        seen_ids.append(account.pk)
    for key, account in accounts.items():
        if key not in seen and not account.is_disabled:
            _disable_account(account, now)
            into.disabled += 1
    for start in range(0, len(seen_ids), 500):  # what the directory still lists was seen now
        DirectoryAccount.objects.filter(pk__in=seen_ids[start : start + 500]).update(synced_at=now)


def _record_failure(*, directory: LdapDirectory, result: SyncResult, actor: str, user: Any) -> None:
    now = timezone.now()
    with transaction.atomic():
        LdapDirectory.objects.filter(pk=directory.pk).update(
            last_sync_at=now, last_sync_summary=result.summary, last_error=result.error
        )
        audit_record(
            actor=actor if user is None else actor_for(user),
            user=user,
            target=directory,
            action="ldap_directory.sync_failed",
            outcome="failed",
            message=result.error,
        )
    directory.last_sync_at = now
    directory.last_sync_summary = result.summary
    directory.last_error = result.error
    log.warning("LDAP directory %s: sync failed: %s", directory.name, result.error)


def _claim(directory: LdapDirectory, now: datetime) -> bool:
    """Take the directory's turn (its last_sync_at moves to now) unless another poller did."""
    rows = LdapDirectory.objects.filter(pk=directory.pk)
    if directory.last_sync_at is None:
        rows = rows.filter(last_sync_at__isnull=True)
    else:
        rows = rows.filter(last_sync_at=directory.last_sync_at)
    return rows.update(last_sync_at=now) == 1


def ldap_directories_sync_due(*, now: datetime | None = None) -> list[SyncResult]:
    """Sync every enabled directory whose interval has passed since its last sync or attempt.
    Each is claimed first, so two pollers never sync one directory at once, and each runs on
    its own: one that fails, however it fails, never stops the others."""
    now = now or timezone.now()
    results = []
    for directory in ldap_directories_due(now=now):
        if not _claim(directory, now):
            continue
        try:
            results.append(ldap_directory_sync(directory=directory, actor="poller"))
        except Exception as exc:
            log.exception("LDAP directory %s: sync failed unexpectedly", directory.name)
            error = f"unexpected error: {type(exc).__name__}"
            LdapDirectory.objects.filter(pk=directory.pk).update(last_error=error)
            results.append(SyncResult(directory=directory.name, ok=False, error=error))
    return results


# --- testing the connection --------------------------------------------------------------------


def ldap_directory_test(*, directory: LdapDirectory) -> DirectoryTestResult:
    """Bind as configured and count the people a sync would import. Changes nothing."""
    try:
        people, disabled = ldap.count_people(ldap_directory_config(directory=directory))
    except (ldap.LdapError, VaultError) as exc:
        return DirectoryTestResult(ok=False, message=_failure_message(exc))
    who = directory.bind_dn or "anonymous"
    return DirectoryTestResult(
        ok=True,
        message=f"Connected to {directory.server_uri} ({directory.get_security_display()}) as "
        f"{who}: {people} people match the user filter, {disabled} of them disabled.",
        people=people,
        disabled=disabled,
    )


# --- sign-in -----------------------------------------------------------------------------------


def _refresh_account(
    *, directory: LdapDirectory, entry: ldap.DirectoryEntry, mapping: dict[str, str], actor: str
) -> tuple[str, DirectoryAccount | None]:
    """Create or update the one account of `entry`, as a sync would; audited when it changed."""
    values = _user_values(entry, mapping)
    if not _usable_username(values.get("username", "")):
        return "skipped", None
    now = timezone.now()
    with transaction.atomic():
        account = directory_account_find(directory=directory, username=values["username"])
        outcome, account = _upsert_account(
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
                actor=actor,
                user=account.user,
                target=account,
                action=f"directory_account.{outcome}",
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
        _, account = _refresh_account(
            directory=directory, entry=entry, mapping=mapping, actor="sso"
        )
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
        _disable_account(account, timezone.now())
        audit_record(
            actor="sso",
            user=account.user,
            target=account,
            action="directory_account.disabled",
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
                _failure_message(exc),
            )
            continue
        _, account = _refresh_account(
            directory=directory, entry=entry, mapping=mapping, actor="login"
        )
        if entry.disabled:
            raise DirectoryUserDisabled(directory=directory.name, username=username)
        if account is not None:
            return account.user
    return None
